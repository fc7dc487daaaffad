"""Conversations as prompts for models without a chat template, and stop sequences."""

from __future__ import annotations

from pluggably.providers.base import Message

_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
STOP_AT_TURN = ["\nUser:", "\nSystem:"]


def transcript(messages: list[Message]) -> str:
    """A plain transcript ending with the assistant's cue, for base models: each turn
    as ``Role: text`` on its own lines; the model continues after ``Assistant:``."""
    lines = [f"{_ROLES.get(m.role, m.role.title())}: {m.text}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def stop_sequences(value: str | list[str] | None, *, plain: bool) -> list[str]:
    """The caller's stop sequences; a plain transcript also stops at the next turn."""
    stops = [value] if isinstance(value, str) else list(value or [])
    return stops + (STOP_AT_TURN if plain else [])


class StopFilter:
    """Holds back text that may be the start of a stop sequence; cuts at the first match."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """The text now safe to show, and whether a stop sequence was reached."""
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            safe, self.pending = self.pending[: min(hits)], ""
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
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0
