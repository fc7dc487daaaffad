"""The answer of ``GET /v1/providers``: what each provider of this deployment can serve."""

from __future__ import annotations

from pydantic import BaseModel


class ProviderInfo(BaseModel):
    name: str
    configured: bool
    supported_modalities: list[str]
    credential_types: list[str]
    default_model: str | None
    models_discovered: list[str] | None = None
    credits_status: dict[str, object] | None = None


class ProviderList(BaseModel):
    providers: list[ProviderInfo]
