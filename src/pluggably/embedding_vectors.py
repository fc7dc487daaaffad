"""The one place embedding vectors take the shape a request asks for (API.md §3):
``dimensions`` keeps the first that many components (Matryoshka-style truncation, as
OpenAI's text-embedding-3 models and Gemini's embedding models are trained for), then
``normalize`` scales each vector to unit L2 length. Every backend (local runtimes and
providers alike) passes its vectors through here, so every model answers the same
contract whatever its upstream does by itself."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pluggably.errors import InvalidParameter

_TOO_LARGE = {"loc": ["parameters", "dimensions"], "msg": "too large", "type": "too_large"}


def shape_vectors(
    vectors: Sequence[Sequence[float]], dimensions: int | None, normalize: bool
) -> list[list[float]]:
    """``vectors`` cut to ``dimensions`` components (None: all of them), then scaled to
    unit length when ``normalize`` (a zero vector stays zero). A ``dimensions`` above
    what the model gives is a 400 naming the model's size."""
    shaped: list[list[float]] = []
    for vector in vectors:
        values = [float(x) for x in vector]
        if dimensions is not None:
            if dimensions > len(values):
                raise InvalidParameter(
                    f"'dimensions' is {dimensions}, but this model's embeddings have "
                    f"{len(values)}; ask for {len(values)} or fewer.",
                    details=[_TOO_LARGE],
                )
            values = values[:dimensions]
        if normalize:
            values = unit(values)
        shaped.append(values)
    return shaped


def unit(values: list[float]) -> list[float]:
    """``values`` scaled to L2 length 1 (a zero vector is returned as it is)."""
    norm = math.sqrt(math.fsum(x * x for x in values))
    return [x / norm for x in values] if norm > 0 else values
