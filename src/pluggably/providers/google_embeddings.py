"""Gemini embeddings over ``models/{model}:batchEmbedContents``: the request body (one
``EmbedContentRequest`` per text) and the answer read back.

``outputDimensionality`` goes upstream for the models that take it (gemini-embedding-*
and text-embedding-004 and later); below their full size Gemini's vectors are not unit
length, which ``embeddings.embedding_answer`` fixes when the request asks to normalize.
The Gemini API reports no tokens for embeddings (unlike generateContent): the count
then follows Google's own rule of thumb, about 4 characters a token, rather than a
second call to countTokens for every request."""

from __future__ import annotations

import math
import re
from typing import Any

from pluggably.providers import errors
from pluggably.providers.base import ProviderCall
from pluggably.providers.embeddings import wanted

# The most requests one batchEmbedContents call takes.
MAX_INPUTS = 100
CHARS_PER_TOKEN = 4  # https://ai.google.dev/gemini-api/docs/tokens
_TAKES_DIMENSIONS = re.compile(r"^(?:models/)?(gemini-embedding-|text-embedding-)", re.I)


def batch_body(call: ProviderCall, texts: list[str]) -> dict[str, Any]:
    name = f"models/{call.model.removeprefix('models/')}"
    dimensions, _ = wanted(call)
    extra = (
        {"outputDimensionality": dimensions}
        if dimensions is not None and _TAKES_DIMENSIONS.match(call.model)
        else {}
    )
    return {
        "requests": [
            {"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in texts
        ]
    }


def read_batch(data: Any, provider: str, model: str, texts: list[str]) -> tuple[list[Any], int]:
    """The vectors of a BatchEmbedContentsResponse, in input order, and the prompt
    tokens: the upstream's count where it sends one, else estimated."""
    try:
        vectors = [item["values"] for item in data["embeddings"]]
    except (KeyError, TypeError):
        raise errors.malformed(provider, model, "no embeddings") from None
    usage = data.get("usageMetadata")
    counted = usage.get("promptTokenCount") if isinstance(usage, dict) else None
    if isinstance(counted, int):
        return vectors, counted
    return vectors, sum(math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts)
