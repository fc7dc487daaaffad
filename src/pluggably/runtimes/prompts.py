"""Conversations as prompts for models without a chat template, and stop sequences."""

from __future__ import annotations

from collections.abc import Callable

from pluggably.messages import Message
from pluggably.stops import StopFilter

__all__ = [
    "TURN_MARKERS",
    "AnswerFilter",
    "is_prefill",
    "template_prompt",
    "transcript",
]

_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
# A base model continues a transcript past its own turn: it invents the next "User:"
# line, or another "Assistant:" one. The answer ends where any turn would begin.
TURN_MARKERS = ["\nUser:", "\nAssistant:", "\nSystem:"]


def transcript(messages: list[Message]) -> str:
    """A plain transcript ending with the assistant's cue, for base models: each turn
    as ``Role: text`` on its own lines; the model continues after ``Assistant:``. When
    the last message is the assistant's (a prefill), the transcript ends with its text
    and the model continues that text."""
    lines = [f"{_ROLES.get(m.role, m.role.title())}: {m.text}" for m in messages]
    return "\n".join(lines if is_prefill(messages) else [*lines, "Assistant:"])


def is_prefill(messages: list[Message]) -> bool:
    """The conversation ends with the start of the assistant's answer, to be continued
    (Anthropic's prefill): the model writes what follows it, not a new turn."""
    return bool(messages) and messages[-1].role == "assistant"


# Marks the end of a prefill in a chat template's output: the prompt is cut there, so
# it ends with the assistant's partial text and no end of turn.
PREFILL_MARK = "\ue000prefill\ue000"


def template_prompt(render: Callable[[list[dict[str, str]]], str], messages: list[Message]) -> str:
    """A chat template's prompt for ``messages``; a prefill is left open for the model to
    continue (whatever the template puts after an assistant turn is cut off)."""
    turns = [{"role": m.role, "content": m.text} for m in messages]
    if not is_prefill(messages):
        return render(turns)
    turns[-1]["content"] += PREFILL_MARK
    prompt = render(turns)
    at = prompt.rfind(PREFILL_MARK)
    return prompt[:at] if at >= 0 else prompt


class AnswerFilter:
    """One answer's text as it is generated, cut at the caller's stop sequences and at
    the runtime's own ``markers`` (a transcript's turn markers). The caller's sequence
    that ended it is ``stop_sequence``; a marker is never shown nor reported, and the
    whitespace in front of it (the blank line before an invented turn) goes with it."""

    def __init__(self, stops: list[str], markers: list[str] | None = None) -> None:
        self.stops = [s for s in stops if s]
        self.markers = [m for m in markers or [] if m not in self.stops]
        self._filter = StopFilter([*self.stops, *self.markers])
        self._spaces = ""  # trailing whitespace held back while a marker may follow
        self.stopped = False
        self.stop_sequence: str | None = None

    def feed(self, text: str) -> str:
        """The text now safe to show (``stopped`` is set once a sequence was reached)."""
        safe, hit = self._filter.feed(text)
        if not hit:
            return self._hold(safe)
        self.stopped = True
        matched = self._filter.matched
        if matched in self.stops:
            self.stop_sequence = matched
            return self._release(safe)
        return self._release(safe).rstrip()

    def flush(self) -> str:
        """The rest, at the end of a generation that reached no stop sequence; less what
        would begin a turn (``"\nUs"`` when the token limit came mid-marker)."""
        rest = self._filter.flush()
        if rest and any(m.startswith(rest) for m in self.markers):
            return self._release("").rstrip()
        return self._release(rest)

    def _hold(self, safe: str) -> str:
        if not self.markers:
            return safe
        text = self._spaces + safe
        body = text.rstrip()
        self._spaces = text[len(body) :]
        return body

    def _release(self, safe: str) -> str:
        text, self._spaces = self._spaces + safe, ""
        return text
