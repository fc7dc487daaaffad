"""The nested groups of settings: an external token issuer, providers, operator-run
endpoints and the S3 artifact bucket. Each forbids unknown keys so a typo in the YAML
file is an error, not a silently ignored setting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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


class EndpointSettings(BaseModel):
    """An operator-run OpenAI-compatible server (vLLM, llama.cpp server, Ollama, …),
    usable by every user without a credential of their own."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=list)
    default_model: str | None = None


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
