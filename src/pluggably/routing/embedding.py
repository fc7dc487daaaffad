"""Routing for modality ``embedding``: why a provider cannot embed, said to the caller
as ``feature_not_supported`` (which provider models embed, and each provider's default
embedding model, are the provider directory's to say)."""

from __future__ import annotations

from pluggably.providers.base import Provider

NO_EMBEDDINGS = {
    "anthropic": "Anthropic has no embeddings API; use an OpenAI-compatible provider, "
    "Gemini or a local embedding model",
}


def cannot_embed(name: str, provider: Provider | None) -> str | None:
    """Why provider ``name`` cannot serve embeddings here; None when it can."""
    if name in NO_EMBEDDINGS:
        return NO_EMBEDDINGS[name]
    if provider is None or "embedding" not in provider.modalities:
        return f"{name} serves no embeddings here; use a provider that does or a local model"
    return None
