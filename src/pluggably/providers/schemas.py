"""The answer of ``GET /v1/providers``: what each provider of this deployment can serve."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProviderInfo(BaseModel):
    name: str
    configured: bool
    supported_modalities: list[str] = Field(
        description="What it generates: text, image, 3d (the modalities the original "
        "PlugAI clients know); whether it embeds is `embeddings`."
    )
    embeddings: bool = Field(
        default=False, description="It serves embeddings (modality `embedding`)."
    )
    credential_types: list[str]
    default_model: str | None
    models_discovered: list[str] | None = None
    credits_status: dict[str, object] | None = None


class ProviderList(BaseModel):
    providers: list[ProviderInfo]
