"""Conversations as prompts for models without a chat template, and stop sequences."""

from __future__ import annotations

from pluggably.providers.base import Message
from pluggably.providers.stops import StopFilter

__all__ = ["STOP_AT_TURN", "StopFilter", "stop_sequences", "transcript"]

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
