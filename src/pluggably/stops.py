"""Stop sequences applied to generated text: where a model's own engine cannot (a vendor
that takes fewer sequences than the caller sent, a local runtime that must know which
one matched). The text ends right before the earliest match and never shows it."""

from __future__ import annotations

from collections.abc import Sequence


def as_list(value: object) -> list[str]:
    """The ``stop`` parameter (one string or a list) as a list of non-empty strings."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [s for s in value if isinstance(s, str) and s]
    return []


def earliest(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """Where the first of ``stops`` to occur in ``text`` starts, and which one it is (at
    one position, the first listed wins)."""
    found: tuple[int, str] | None = None
    for stop in stops:
        at = text.find(stop) if stop else -1
        if at >= 0 and (found is None or at < found[0]):
            found = (at, stop)
    return found


def cut(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """``text`` up to its first stop sequence, and that sequence (None: none occurs)."""
    hit = earliest(text, stops)
    return (text, None) if hit is None else (text[: hit[0]], hit[1])


class StopFilter:
    """Text as it streams, held back while it may be the start of a stop sequence and
    cut at the first match; ``matched`` says which sequence ended it."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.matched: str | None = None

    def feed(self, text: str) -> tuple[str, bool]:
        """The text now safe to show, and whether a stop sequence was reached."""
        self.pending += text
        hit = earliest(self.pending, self.stops)
        if hit is not None:
            safe, self.pending = self.pending[: hit[0]], ""
            self.matched = hit[1]
            return safe, True
        hold = max((_overlap(self.pending, s) for s in self.stops), default=0)
        safe = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(safe) :]
        return safe, False

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that begins ``stop``."""
    first = stop[0]
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text[-n] == first and stop.startswith(text[-n:]):
            return n
    return 0
