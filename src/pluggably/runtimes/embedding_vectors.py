"""What embedding runtimes share: texts in batches (cancellation is checked between
them), and each model's raw vectors shaped as the request asks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from pluggably.embedding_vectors import shape_vectors
from pluggably.runtimes.base import LocalCall, LocalResult

BATCH_SIZE = 32


def batches(
    texts: list[str], cancel: threading.Event, size: int = BATCH_SIZE
) -> Iterator[list[str]]:
    """``texts`` in batches of ``size``; none once ``cancel`` is set."""
    for start in range(0, len(texts), size):
        if cancel.is_set():
            return
        yield texts[start : start + size]


def embedded(
    vectors: Sequence[Sequence[float]], tokens: int, call: LocalCall, cancel: threading.Event
) -> LocalResult:
    """A runtime's answer: the vectors shaped as the call asks, with the tokens read;
    only the count when the call was cancelled on the way."""
    if cancel.is_set():
        return LocalResult(finish_reason="cancelled", prompt_tokens=tokens)
    return LocalResult(embeddings=shaped(vectors, call.parameters), prompt_tokens=tokens)


def shaped(vectors: Sequence[Sequence[float]], parameters: dict[str, object]) -> list[list[float]]:
    """The vectors as the call's ``dimensions`` and ``normalize`` ask
    (``embedding_vectors.shape_vectors``, which providers' vectors go through too)."""
    dimensions = parameters.get("dimensions")
    return shape_vectors(
        vectors,
        dimensions if isinstance(dimensions, int) else None,
        parameters.get("normalize", True) is not False,
    )
