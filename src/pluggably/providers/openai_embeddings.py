"""Embeddings over OpenAI's ``POST /embeddings`` (OpenAI, Azure OpenAI deployments,
operator-configured OpenAI-compatible servers): the request body and the answer.

Vectors are always asked for as floats (``encoding_format: float``, which every
compatible server reads; base64 is the OpenAI surface's business). ``dimensions`` goes
upstream only to models known to take it (OpenAI's text-embedding-3 family: older
models and most self-hosted servers answer it with a 400); the answer then passes
through ``embeddings.embedding_answer``, which truncates and normalizes as asked."""

from __future__ import annotations

import re
from typing import Any

from pluggably.providers import errors
from pluggably.providers.base import ProviderCall
from pluggably.providers.embeddings import wanted

# The most inputs OpenAI takes in one request; a longer list goes in several requests.
MAX_INPUTS = 2048
# Models that shorten their own vectors when asked (``dimensions``).
_TAKES_DIMENSIONS = re.compile(r"^text-embedding-3-", re.I)


def embeddings_body(call: ProviderCall, texts: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": call.model, "input": texts, "encoding_format": "float"}
    dimensions, _ = wanted(call)
    if dimensions is not None and _TAKES_DIMENSIONS.match(call.model):
        body["dimensions"] = dimensions
    return body


def read_embeddings(data: Any, provider: str, model: str) -> tuple[list[Any], int | None]:
    """The vectors of a CreateEmbeddingResponse in input order, and its prompt tokens
    (None: the server did not say)."""
    try:
        items = sorted(data["data"], key=lambda item: int(item.get("index", 0)))
        vectors = [item["embedding"] for item in items]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise errors.malformed(provider, model, "no embeddings") from None
    usage = data.get("usage")
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return vectors, prompt if isinstance(prompt, int) else None
