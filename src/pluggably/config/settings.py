"""Settings: environment (prefix ``PLUGGABLY_``, nested keys with ``__``) over an
optional YAML file named by ``PLUGGABLY_CONFIG`` over defaults.

Reading settings touches no disk except the YAML file; directories are created by
the app's lifespan, never here.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal

from platformdirs import user_config_path, user_data_path
from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from pluggably.config.sections import (
    ArtifactS3Settings,
    EndpointSettings,
    ExternalJwtSettings,
    ProviderSettings,
)
from pluggably.usage.limits import Limits
from pluggably.usage.prices import Price, PriceKey

ENV_PREFIX = "PLUGGABLY_"
CONFIG_FILE_ENV = "PLUGGABLY_CONFIG"


def _default_data_dir() -> Path:
    # XDG data dir: $XDG_DATA_HOME/pluggably or ~/.local/share/pluggably
    return user_data_path("pluggably", appauthor=False)


def _default_key_file() -> Path:
    # The master key lives under the config dir, deliberately outside the data dir.
    return user_config_path("pluggably", appauthor=False) / "secret.key"


def is_loopback_host(host: str) -> bool:
    """True when binding to ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every operator-facing setting. Environment variables win over the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the database, models and artifacts live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default SQLite in the data dir. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="Bootstrap admin credential (acts as the 'admin' user)."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Master key for encryption and signing "
        "(else read from, or created in, secret_key_file).",
    )
    secret_key_file: Path = Field(
        default_factory=_default_key_file,
        description="Master key file (created 0600 on first run); must be outside the data dir.",
    )
    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port to bind.")
    local_only: bool = Field(
        default=False,
        description="Unauthenticated loopback callers act as the local admin. "
        "Refused unless host is a loopback address.",
    )
    metrics_public: bool = Field(default=False, description="Serve /metrics without credentials.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Log lines on stderr: json (one object per line), console, or auto "
        "(console when stderr is a terminal, json otherwise).",
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest accepted request body."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200, description="PostgreSQL pool size.")
    max_request_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request head (request line and headers); larger is 431.",
    )
    header_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this many seconds of its first "
        "byte (of the connection, for the first request); else the connection is closed.",
    )
    max_connections: int = Field(
        default=2048,
        ge=1,
        description="Open client connections at most; more are refused at accept (503). "
        "Lowered at startup to fit the open-file limit.",
    )
    max_connections_per_address: int = Field(
        default=512,
        ge=1,
        description="Open connections from one client address (an IPv6 client by its /64) at "
        "most; more are refused at accept (503). Trusted proxies are not limited.",
    )
    trusted_proxies: list[IPvAnyNetwork | Literal["*"]] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: those headers are ignored.",
    )
    bundled_model: bool = Field(
        default=True,
        description="Register the bundled models whose packages are installed: the Gemma "
        "3 270M GGUF (assembled once; the default text model) and all-MiniLM-L6-v2 (the "
        "default embedding model).",
    )
    storage_limit_bytes: int | None = Field(
        default=None, ge=0, description="Quota for the models directory (default: the disk)."
    )
    retention_max_idle_days: int | None = Field(
        default=None, ge=1, description="Cleanup also removes downloaded models idle this long."
    )
    storage_cleanup_interval_s: int | None = Field(
        default=None, ge=60, description="Apply the retention policy on this schedule too."
    )
    keep_partial_downloads: bool = Field(
        default=True, description="Keep a cancelled download's partial files for a later resume."
    )
    allow_private_downloads: bool = Field(
        default=False, description="Allow URL downloads from loopback/private addresses."
    )
    download_size_guard_bytes: int = Field(
        default=50 * 10**9, ge=1, description="Larger downloads need options.allow_large."
    )
    hf_endpoint: str | None = Field(
        default=None, description="Hugging Face hub URL (default $HF_ENDPOINT or huggingface.co)."
    )
    hf_token: SecretStr | None = Field(default=None, description="Token for gated/private repos.")
    registration_open: bool = Field(
        default=False, description="Allow registration without an invite."
    )
    invite_ttl_days: int = Field(default=7, ge=1, le=365, description="Default invite lifetime.")
    login_token_ttl_minutes: int = Field(
        default=24 * 60, ge=5, le=90 * 24 * 60, description="Lifetime of login tokens."
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins on one account from one client address per window before "
        "that address is refused on that account (other addresses are not).",
    )
    login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed logins per client address per window."
    )
    login_failure_window_s: int = Field(default=900, ge=1, description="Throttle window.")
    login_slowdown_after: int = Field(
        default=10,
        ge=1,
        description="Failed logins on one account from all addresses per window after which "
        "every attempt on it takes a turn, paced one after another (an attempt whose turn "
        "is over 30 s off is refused 429).",
    )
    login_slowdown_max_s: float = Field(
        default=3.0, ge=0, le=30, description="Longest such wait; it doubles from 0.25 s."
    )
    login_max_failures_per_account: int = Field(
        default=100,
        ge=1,
        description="Failed logins on one account from all addresses (at once, then this "
        "many per window) after which only addresses it logged in from lately get through.",
    )
    registration_max_failures_per_address: int = Field(
        default=10, ge=1, description="Failed registrations per client address per window."
    )
    external_jwt: ExternalJwtSettings | None = None
    artifacts_backend: Literal["local", "s3"] = Field(
        default="local",
        description="Where generated artifacts are stored: the data dir's artifacts/ folder, "
        "or an S3-compatible bucket (artifacts_s3; needs the 's3' extra).",
    )
    artifacts_s3: ArtifactS3Settings | None = Field(
        default=None, description="The bucket used when artifacts_backend is 's3'."
    )
    public_base_url: str | None = Field(
        default=None,
        description="The gateway's external base URL (https://llm.example.com) used in "
        "artifact links; unset: links are root-relative.",
    )
    artifact_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        le=365 * 24 * 3600,
        description="Lifetime of an artifact and of its signed link, in seconds.",
    )
    artifact_cleanup_interval_s: int = Field(
        default=300, ge=1, description="How often expired artifacts are deleted, in seconds."
    )
    session_retention_closed_days: int | None = Field(
        default=None,
        ge=1,
        description="Delete closed sessions (and their messages) this many days after they "
        "were closed; unset: keep them.",
    )
    session_retention_idle_days: int | None = Field(
        default=None,
        ge=1,
        description="Delete active sessions unused for this many days; unset: keep them.",
    )
    session_cleanup_interval_s: int = Field(
        default=3600,
        ge=60,
        description="How often the retention policies of sessions and of stored "
        "responses are applied, in seconds.",
    )
    limits: Limits | None = Field(
        default=None,
        description="Server default limits (API.md §9) for every user but admins: rpm, tpm, "
        "max_concurrent, budget_usd, budget_period, models. A user's and a token's own "
        "limits apply too; the strictest wins.",
    )
    prices: dict[PriceKey, Price] = Field(
        default_factory=dict,
        description="Price overrides and additions: 'provider:model' pattern -> "
        "{input_per_mtok, output_per_mtok, per_image} in US dollars ('local:*' prices "
        "local models, which otherwise cost 0).",
    )
    limit_slot_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        description="A concurrency slot older than this no longer counts (a replica that "
        "died while holding it).",
    )
    responses_retention_days: int | None = Field(
        default=30,
        ge=1,
        description="Delete Responses API responses stored this many days ago (OpenAI "
        "keeps them 30 days); unset: keep them.",
    )
    session_storage_bytes_per_user: int | None = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Most bytes of session content one user may keep (message text, system "
        "prompts, state tokens, plus a small charge per session and message); a turn or "
        "session that would go over is refused (409 session_storage_full). Unset: no bound.",
    )
    session_request_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Most bytes of new turns (and state tokens) one request stores in a "
        "session; more is refused (413 payload_too_large).",
    )
    session_page_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="GET /v1/sessions/{id} stops adding older messages to a page past this "
        "many bytes of text (the newest message always comes); next_before pages on.",
    )
    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict, description="Server-wide provider settings, by provider name."
    )
    endpoints: dict[str, EndpointSettings] = Field(
        default_factory=dict,
        description="Operator-run OpenAI-compatible servers, by provider name.",
    )
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Fallback chain per model ('provider:model' -> ['provider:model', ...]).",
    )
    default_fallbacks: list[str] = Field(
        default_factory=list, description="Fallback chain for models without their own."
    )
    local_models: bool = Field(
        default=True,
        description="Run local models in this process; false: a pure gateway (providers "
        "and endpoints only), as every worker of `serve --workers N` is.",
    )
    cluster_lease_s: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="PostgreSQL replicas: a replica silent this long is dead; a survivor "
        "marks its requests interrupted and takes over its downloads.",
    )
    max_loaded_models: int = Field(
        default=2, ge=1, le=64, description="Local models held in memory at once."
    )
    memory_budget_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Memory local models may hold together; least recently used idle "
        "models are evicted to stay under it (default: only max_loaded_models counts).",
    )
    keep_alive_s: float | None = Field(
        default=300.0,
        gt=0,
        description="Unload an idle local model after this long (null: keep it loaded); "
        "pinned models (each modality's default) stay.",
    )
    max_queue_depth: int = Field(
        default=16, ge=0, le=10_000, description="Requests that may wait for a local model."
    )
    max_queue_per_user: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Requests one user may have waiting for a local model; more are 429 "
        "(default: a quarter of max_queue_depth, at least 1).",
    )
    local_parallel: int = Field(
        default=1, ge=1, le=64, description="Requests a local model serves at once."
    )
    local_context_tokens: int = Field(
        default=4096, ge=256, description="Context window for GGUF models (llama.cpp)."
    )
    preload_defaults: bool = Field(
        default=True, description="Load each modality's default local model at startup."
    )
    inline_output_bytes: int = Field(
        default=256 * 1024,
        ge=0,
        description="Images and meshes larger than this (together) are returned as "
        "artifact links instead of inline base64.",
    )
    upstream_timeout_s: float = Field(
        default=120.0, gt=0, description="Read timeout for provider calls."
    )
    upstream_proxy: str | None = Field(
        default=None,
        description="HTTP proxy for provider calls (http://host:port); the HTTP(S)_PROXY "
        "environment variables are not read.",
    )
    server_keys_allowed: list[str] = Field(
        default_factory=list,
        description="Who may use server-wide provider keys: usernames, '@admins', or '*'.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        allowed = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(allowed):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.secret_key_file = self.secret_key_file.expanduser().resolve()
        if self.secret_key is None and self.secret_key_file.is_relative_to(self.data_dir):
            raise ValueError("secret_key_file must be outside data_dir")
        if self.local_only and not is_loopback_host(self.host):
            raise ValueError(
                f"local_only is refused while host={self.host!r} is not a loopback address"
            )
        if self.artifacts_backend == "s3" and self.artifacts_s3 is None:
            raise ValueError("artifacts_backend 's3' needs artifacts_s3.bucket")
        if self.public_base_url is not None:
            self.public_base_url = self.public_base_url.rstrip("/")
            if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", self.public_base_url):
                raise ValueError("public_base_url must be an http(s) URL without query")
        if self.admin_key is not None and len(self.admin_key.get_secret_value()) < 16:
            raise ValueError("admin_key must be at least 16 characters")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'pluggably.db'}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"
