"""The nested groups of settings: an external token issuer, providers, operator-run
endpoints (one server or a pool) and the S3 artifact bucket. Each forbids unknown keys
so a typo in the YAML file is an error, not a silently ignored setting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class ExternalJwtSettings(BaseModel):
    """A second issuer of bearer tokens (an identity provider). Exactly one key source."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(description="Expected `iss` claim.")
    audience: str = Field(description="Expected `aud` claim.")
    algorithms: list[Literal["HS256", "RS256", "ES256"]] = Field(default=["RS256"])
    secret: SecretStr | None = Field(default=None, description="HS256 shared secret.")
    public_key_file: Path | None = Field(default=None, description="PEM public key (RS256/ES256).")
    jwks_file: Path | None = Field(default=None, description="JWKS file (RS256/ES256, by `kid`).")
    auto_provision: bool = Field(
        default=False, description="Create a user on first sight of an unknown `sub`."
    )
    leeway_s: int = Field(default=30, ge=0, le=600, description="Clock skew tolerance.")

    @model_validator(mode="after")
    def _one_key_source(self) -> ExternalJwtSettings:
        if self.issuer == "pluggably":
            raise ValueError("issuer 'pluggably' is reserved for this server's login tokens")
        sources = [s for s in (self.secret, self.public_key_file, self.jwks_file) if s is not None]
        if len(sources) != 1:
            raise ValueError("set exactly one of secret, public_key_file, jwks_file")
        if self.secret is not None and self.algorithms != ["HS256"]:
            raise ValueError("a secret is only for algorithms: [HS256]")
        if self.secret is None and "HS256" in self.algorithms:
            raise ValueError("HS256 needs a secret; public keys are for RS256/ES256")
        return self


class ProviderSettings(BaseModel):
    """Operator-level configuration of one provider (server-wide key, base URL)."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = None
    endpoint: str | None = None
    base_url: str | None = None
    default_model: str | None = None


MAX_POOL_URLS = 32  # servers of one endpoint pool


class EndpointSettings(BaseModel):
    """An operator-run OpenAI-compatible server (vLLM, llama.cpp server, Ollama, …),
    usable by every user without a credential of their own; with ``base_urls``, a pool
    of such servers serving the same models (each call goes to the least busy)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, description="The server's URL, e.g. …/v1.")
    base_urls: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_POOL_URLS,
        description="Several servers of the same models (a pool), instead of base_url.",
    )
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=list)
    default_model: str | None = None
    health_check_interval_s: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="A pool checks each server (GET …/models) this often; one that fails "
        "gets calls only when every server does.",
    )

    @model_validator(mode="after")
    def _one_url_source(self) -> EndpointSettings:
        if (self.base_url is None) == (self.base_urls is None):
            raise ValueError("set exactly one of base_url, base_urls")
        seen: set[tuple[str, str | None, int | None, str]] = set()
        for index, url in enumerate(self.urls):
            # The messages name the entry, not the URL: it may carry credentials.
            name = "base_url" if self.base_urls is None else f"base_urls[{index}]"
            split = urlsplit(url)
            if split.scheme not in {"http", "https"} or not split.hostname:
                raise ValueError(f"{name} is not an http(s) URL")
            if split.query or split.fragment:
                raise ValueError(f"{name}: give the server's base URL, without ? or #")
            if split.username is not None and self.api_key is not None:
                raise ValueError(f"{name} has a user in it and api_key is set: use one of them")
            try:  # what names the server in /metrics and /v1/providers: no credentials
                server = (split.scheme, split.hostname, split.port, split.path.rstrip("/"))
            except ValueError:
                raise ValueError(f"{name} has a port that is not a number up to 65535") from None
            if server in seen:
                raise ValueError(f"{name} repeats an earlier URL")
            seen.add(server)
        return self

    @property
    def urls(self) -> list[str]:
        """The endpoint's servers: one, or the pool's."""
        return self.base_urls if self.base_urls is not None else [self.base_url or ""]


class ArtifactS3Settings(BaseModel):
    """An S3-compatible bucket for artifacts (AWS S3, MinIO, Ceph, R2, …)."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, description="Bucket that holds the artifacts (must exist).")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint URL; unset for AWS S3."
    )
    region: str | None = Field(default=None, description="Region, e.g. us-east-1.")
    access_key_id: str | None = Field(
        default=None, description="Access key id; unset: boto3's usual credential chain."
    )
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")
    prefix: str = Field(default="", description="Key prefix inside the bucket, e.g. 'pluggably/'.")
