"""What embedding runtimes share: texts in batches (cancellation is checked between
them), and each model's raw vectors shaped as the request asks: cut to ``dimensions``
(Matryoshka-style: the first dimensions carry the most), then scaled to unit length
when ``normalize`` (the default)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence

from pluggably.errors import InvalidParameter

BATCH_SIZE = 32


def batches(
    texts: list[str], cancel: threading.Event, size: int = BATCH_SIZE
) -> Iterator[list[str]]:
    """``texts`` in batches of ``size``; none once ``cancel`` is set."""
    for start in range(0, len(texts), size):
        if cancel.is_set():
            return
        yield texts[start : start + size]


def shaped(
    vectors: Sequence[Sequence[float]], parameters: dict[str, object], model_id: str
) -> list[list[float]]:
    """The vectors cut to ``parameters['dimensions']`` and, unless ``normalize`` is
    false, scaled to unit L2 length (a zero vector stays zero)."""
    dimensions = parameters.get("dimensions")
    normalize = parameters.get("normalize", True) is not False
    out: list[list[float]] = []
    for vector in vectors:
        values = [float(v) for v in vector]
        if isinstance(dimensions, int):
            if dimensions > len(values):
                raise InvalidParameter(
                    f"'{model_id}' returns {len(values)} dimensions; 'dimensions' "
                    f"{dimensions} asks for more."
                )
            values = values[:dimensions]
        if normalize:
            norm = math.sqrt(math.fsum(v * v for v in values))
            if norm > 0:
                values = [v / norm for v in values]
        out.append(values)
    return out
