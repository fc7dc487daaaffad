"""Routing for modality ``embedding``: which provider models embed, each provider's
default embedding model, and why a provider cannot embed (said to the caller as
``feature_not_supported``)."""

from __future__ import annotations

import re

from pluggably.providers.base import Provider

# Provider model names that embed (OpenAI's text-embedding-*, Gemini's
# gemini-embedding-* and text-embedding-004, Mistral's mistral-embed, nomic-embed-*).
EMBEDDING_MODELS = re.compile(r"embed", re.I)
# The embedding model a request that names only the provider gets.
EMBEDDING_DEFAULTS = {
    "openai": "text-embedding-3-small",
    "azure": "text-embedding-3-small",
    "google": "gemini-embedding-001",
}
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
