"""What every provider's embeddings share: the request's ``dimensions`` and
``normalize``, inputs split into the runs an upstream takes at once, the answer shaped
by ``shape_vectors`` (so every backend answers the same contract, whatever its
upstream does by itself), and the model names that look like embedding models (for the
catalog and an endpoint's default embedding model)."""

from __future__ import annotations

import re
from typing import Any

from pluggably.embedding_vectors import shape_vectors
from pluggably.providers import errors
from pluggably.providers.base import Completion, ProviderCall, Usage

# Embedding models across vendors and open families: text-embedding-3-small,
# gemini-embedding-001, nomic-embed-text, mxbai-embed-large, bge-m3, e5-large-v2,
# gte-base, all-MiniLM-L6-v2.
_EMBEDDING_NAMES = re.compile(r"(embed|(^|[/_-])(bge|e5|gte)-|minilm)", re.I)


def is_embedding_model(model: str) -> bool:
    return _EMBEDDING_NAMES.search(model) is not None


def wanted(call: ProviderCall) -> tuple[int | None, bool]:
    """The request's ``dimensions`` (None: all) and ``normalize`` (default: unit length)."""
    params = call.parameters
    dimensions = params.get("dimensions")
    normalize = params.get("normalize")
    return (int(dimensions) if dimensions is not None else None), normalize is not False


def batches(texts: list[str], size: int) -> list[list[str]]:
    """``texts`` in runs of at most ``size`` (the most inputs one upstream call takes)."""
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def total(counts: list[int | None]) -> Usage | None:
    """The prompt tokens of several calls; None when any call did not say."""
    if any(c is None for c in counts):
        return None
    return Usage(sum(c for c in counts if c is not None), 0)


def embedding_answer(
    provider: str,
    call: ProviderCall,
    vectors: list[Any],
    usage: Usage | None,
    upstream_model: str | None = None,
) -> Completion:
    """One vector per ``call.texts``, shaped as the request asks."""
    if len(vectors) != len(call.texts) or not all(isinstance(v, list) and v for v in vectors):
        got = f"{len(vectors)} embeddings for {len(call.texts)} inputs"
        raise errors.malformed(provider, call.model, got)
    dimensions, normalize = wanted(call)
    try:
        shaped = shape_vectors(vectors, dimensions, normalize)
    except (TypeError, ValueError):
        raise errors.malformed(provider, call.model, "embeddings that are not numbers") from None
    return Completion(
        text=None,
        finish_reason="stop",
        usage=usage,
        upstream_model=upstream_model,
        embeddings=shaped,
    )
