"""What a text generation's raw output becomes, piece by piece: the answer's text (cut
at stop sequences), a grammar-forced tool call streamed as ``ToolCallDelta``s (the raw
JSON never shows as text), or free text that may turn out to be tool calls
(``tool_choice: auto``), held back from the moment it looks like one and parsed at the
end."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection
from typing import Protocol

from pluggably.deltas import ToolCallDelta
from pluggably.messages import ToolCall
from pluggably.runtimes.base import Piece
from pluggably.runtimes.prompts import AnswerFilter
from pluggably.runtimes.tool_parsing import CallWatch, parse_tool_calls

__all__ = ["Answer", "AutoCalls", "ForcedCall", "TextAnswer", "new_call_id"]

# The head of a forced ``{"name": ..., "arguments": ...}``, up to the arguments' value.
_HEAD = re.compile(r'\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*')
_SPACE_TAIL = re.compile(r"\s*$")
_CALL_TAIL = re.compile(r"\s*(?:\}\s*)?$")  # the wrapper's closing brace may be next


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class Answer(Protocol):
    @property
    def stopped(self) -> bool:
        """A stop sequence (or turn marker) ended the answer."""
        ...

    @property
    def stop_sequence(self) -> str | None: ...

    def feed(self, text: str) -> list[Piece]:
        """The pieces to stream now that ``text`` was generated."""
        ...

    def end(self) -> list[Piece]:
        """The last pieces, when the generation ended (not when it was cancelled)."""
        ...

    def result(self) -> tuple[str, list[ToolCall]]:
        """The whole answer: its text and its tool calls."""
        ...


class TextAnswer:
    """Plain text, through the filter that cuts it at stop sequences."""

    def __init__(self, answer: AnswerFilter) -> None:
        self._answer = answer
        self._parts: list[str] = []

    @property
    def stopped(self) -> bool:
        return self._answer.stopped

    @property
    def stop_sequence(self) -> str | None:
        return self._answer.stop_sequence

    def feed(self, text: str) -> list[Piece]:
        return self._show(self._answer.feed(text))

    def end(self) -> list[Piece]:
        return [] if self.stopped else self._show(self._answer.flush())

    def result(self) -> tuple[str, list[ToolCall]]:
        return "".join(self._parts), []

    def _show(self, text: str) -> list[Piece]:
        if not text:
            return []
        self._parts.append(text)
        return [text]


class ForcedCall:
    """A grammar-forced call: the output is the arguments of ``name``'s call or, with
    ``name`` None, ``{"name": ..., "arguments": ...}``, read until its name is known.
    The arguments stream as they come; the whitespace (and the wrapper's closing brace)
    that may end them waits until more follows."""

    def __init__(self, name: str | None) -> None:
        self.id = new_call_id()
        self._name = name
        self._raw = ""
        self._start: int | None = 0 if name is not None else None  # where arguments begin
        self._sent = 0  # the end of the arguments streamed so far
        self._announced = False  # the call's id and name were streamed
        self._tail = _SPACE_TAIL if name is not None else _CALL_TAIL

    @property
    def stopped(self) -> bool:
        return False  # the grammar ends the answer, not a stop sequence

    @property
    def stop_sequence(self) -> str | None:
        return None

    def feed(self, text: str) -> list[Piece]:
        self._raw += text
        pieces: list[Piece] = []
        if self._start is None:
            head = _HEAD.match(self._raw)
            if head is None:
                return []
            self._name, self._start = json.loads(head.group(1)), head.end()
        if not self._announced:
            self._announced, self._sent = True, self._start
            pieces.append(ToolCallDelta(0, id=self.id, name=self._name))
        if self._sent == self._start:  # the arguments begin at their opening brace
            while self._start < len(self._raw) and self._raw[self._start].isspace():
                self._start += 1
            self._sent = self._start
        held = self._tail.search(self._raw, self._sent)
        upto = held.start() if held else len(self._raw)
        if upto > self._sent:
            pieces.append(ToolCallDelta(0, arguments=self._raw[self._sent : upto]))
            self._sent = upto
        return pieces

    def end(self) -> list[Piece]:
        return []

    def result(self) -> tuple[str, list[ToolCall]]:
        if self._name is None or self._start is None:
            return "", []
        return "", [ToolCall(self.id, self._name, self._raw[self._start : self._sent])]


class AutoCalls:
    """Free text that may hold calls to the tools ``names``: shown while it reads as
    text, held back once it may be a call, parsed when the answer ends. ``single``:
    the caller takes one call at a time (``parallel_tool_calls: false``), the first."""

    def __init__(
        self, answer: AnswerFilter, names: Collection[str], *, single: bool = False
    ) -> None:
        self._single = single
        self._text = TextAnswer(answer)
        self._watch = CallWatch()
        self._names = names
        self._parts: list[str] = []
        self._calls: list[ToolCall] = []

    @property
    def stopped(self) -> bool:
        return self._text.stopped

    @property
    def stop_sequence(self) -> str | None:
        return self._text.stop_sequence

    def feed(self, text: str) -> list[Piece]:
        return self._show(_joined(self._text.feed(text)))

    def end(self) -> list[Piece]:
        pieces = self._show(_joined(self._text.end()))
        parsed = parse_tool_calls(self._watch.rest(), self._names)
        pieces += self._show(parsed.text, watched=False)
        calls = parsed.calls[:1] if self._single else parsed.calls
        for index, call in enumerate(calls):
            self._calls.append(ToolCall(new_call_id(), call.name, call.arguments))
            pieces.append(ToolCallDelta(index, id=self._calls[-1].id, name=call.name))
            pieces.append(ToolCallDelta(index, arguments=call.arguments))
        return pieces

    def result(self) -> tuple[str, list[ToolCall]]:
        return "".join(self._parts), list(self._calls)

    def _show(self, text: str, *, watched: bool = True) -> list[Piece]:
        shown = self._watch.feed(text) if watched else text
        if not shown:
            return []
        self._parts.append(shown)
        return [shown]


def _joined(pieces: list[Piece]) -> str:
    return "".join(p for p in pieces if isinstance(p, str))
