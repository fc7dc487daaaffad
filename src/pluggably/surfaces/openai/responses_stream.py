"""A generation's events as the Responses API's stream: ``event: <type>`` and
``data: <json>`` lines, each event with its ``sequence_number``, and no ``[DONE]``.

``response.created`` and ``response.in_progress`` once a model answers; per output
item ``response.output_item.added``, its deltas (``output_text`` in a content part,
``function_call_arguments``, ``reasoning_summary_text`` in a summary part), their
``done`` events and ``response.output_item.done`` before the next item opens; then
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut it),
with the whole response. A failure after the start is ``response.failed``, a failure
of the stream itself (a cancel, a bug) an ``error`` event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from pluggably.api.sse import SSEFormat
from pluggably.generation.events import (
    Completed,
    Event,
    Failed,
    ReasoningDelta,
    Selected,
    TextDelta,
    ToolCallDelta,
)
from pluggably.generation.schemas import GenerateResponse
from pluggably.ids import new_id
from pluggably.surfaces.openai.responses_input import Item
from pluggably.surfaces.openai.responses_translate import (
    ResponseHead,
    call_item,
    message_item,
    reasoning_item,
    status_of,
)

_TERMINAL = {"completed": "response.completed", "failed": "response.failed"}


class Sequencer:
    """Numbers the events as they are written (errors of the SSE layer included), so
    the numbers a client reads are 0, 1, 2, … in order."""

    def __init__(self) -> None:
        self.next = 0

    def encode(self, event: dict[str, Any]) -> bytes:
        event = {**event, "sequence_number": self.next}
        self.next += 1
        kind = str(event["type"]).encode()
        return b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n"

    @staticmethod
    def error(code: str, message: str) -> dict[str, Any]:
        return {"type": "error", "code": code, "message": message, "param": None}

    def format(self) -> SSEFormat:
        return SSEFormat(encode=self.encode, error=self.error, done=b"")


@dataclass
class _Open:
    """The output item being streamed: its place, its kind and what it has said."""

    index: int
    kind: str  # message | function_call | reasoning
    item_id: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponsesEventWriter:
    """The events of one response. ``final`` is the response object once the answer
    is complete (to store), ``None`` before and after a failure."""

    def __init__(self, head: ResponseHead) -> None:
        self.head = head
        self.started = False
        self.items: list[Item] = []  # the output items closed so far, in order
        # The items streaming now, in order: a message or reasoning item, or the
        # function calls of one turn (an upstream may open several before their
        # arguments come, so they stay open together until something else opens).
        self.open: list[_Open] = []
        self.calls: dict[int, _Open] = {}  # native tool-call index → its item
        self.final: Item | None = None

    def feed(self, event: Event) -> list[dict[str, Any]]:
        out = self._start(event.reported_model if isinstance(event, Selected) else None)
        if isinstance(event, TextDelta) and event.text:
            out += self._delta("message", event.text)
        elif isinstance(event, ReasoningDelta) and event.text:
            out += self._delta("reasoning", event.text)
        elif isinstance(event, ToolCallDelta):
            out += self._call(event)
        elif isinstance(event, Completed):
            out += self._complete(event.response)
        elif isinstance(event, Failed):
            error = {"code": _error_code(event.error.code), "message": event.error.message}
            out.append(self._lifecycle("response.failed", "failed", error=error))
        return out

    def _lifecycle(self, kind: str, status: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "response": self.head.body(status, list(self.items), **fields)}

    def _start(self, model: str | None) -> list[dict[str, Any]]:
        if model is not None:
            self.head.model = model
        if self.started:
            return []
        self.started = True
        created = self._lifecycle("response.created", "in_progress")
        return [created, {**created, "type": "response.in_progress"}]

    def _place(self, item: _Open) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.index}

    def _opening(
        self, kind: str, item_id: str, call_id: str = "", name: str = ""
    ) -> list[dict[str, Any]]:
        calls_stay = kind == "function_call" and all(o.kind == kind for o in self.open)
        out = [] if calls_stay else self._close("completed")
        index = len(self.items) + len(self.open)
        opened = _Open(index, kind, item_id, call_id=call_id, name=name)
        self.open.append(opened)
        added = {"type": "response.output_item.added", "output_index": opened.index}
        if kind == "message":
            item = message_item(item_id, "", "in_progress") | {"content": []}
            part = {"type": "response.content_part.added", "content_index": 0}
            text = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += [added | {"item": item}, part | self._place(opened) | {"part": text}]
        elif kind == "reasoning":
            item = reasoning_item(item_id, "") | {"summary": []}
            part = {"type": "response.reasoning_summary_part.added", "summary_index": 0}
            text = {"type": "summary_text", "text": ""}
            out += [added | {"item": item}, part | self._place(opened) | {"part": text}]
        else:
            item = call_item(item_id, opened.call_id, opened.name, "", "in_progress")
            out.append(added | {"item": item})
        return out

    def _delta(self, kind: str, text: str) -> list[dict[str, Any]]:
        out = []
        if not self.open or self.open[-1].kind != kind:
            out = self._opening(kind, new_id("msg" if kind == "message" else "rs"))
        self.open[-1].text.append(text)
        where = self._place(self.open[-1])
        if kind == "message":
            delta = {"type": "response.output_text.delta", "content_index": 0, "logprobs": []}
        else:
            delta = {"type": "response.reasoning_summary_text.delta", "summary_index": 0}
        return [*out, delta | where | {"delta": text}]

    def _call(self, event: ToolCallDelta) -> list[dict[str, Any]]:
        out = []
        call = self.calls.get(event.index)
        if call is None:
            call_id = event.id or f"call_{event.index}"
            out = self._opening(
                "function_call", new_id("fc"), call_id=call_id, name=event.name or ""
            )
            call = self.calls[event.index] = self.open[-1]
        if not event.arguments:
            return out
        call.text.append(event.arguments)
        delta = {"type": "response.function_call_arguments.delta", "delta": event.arguments}
        return [*out, delta | self._place(call)]

    def _close(self, status: str) -> list[dict[str, Any]]:
        """The open items' ``done`` events, in order; they join the output."""
        opened, self.open = self.open, []
        return [event for item in opened for event in self._done(item, status)]

    def _done(self, opened: _Open, status: str) -> list[dict[str, Any]]:
        text, where = "".join(opened.text), self._place(opened)
        done = {"type": "response.output_item.done", "output_index": opened.index}
        if opened.kind == "function_call":
            item = call_item(opened.item_id, opened.call_id, opened.name, text, "completed")
            args = {"type": "response.function_call_arguments.done", "arguments": text}
            events = [args | where]
        elif opened.kind == "message":
            item = message_item(opened.item_id, text, status)
            part = item["content"][0]
            events = [
                {"type": "response.output_text.done", "content_index": 0, "text": text}
                | where
                | {"logprobs": []},
                {"type": "response.content_part.done", "content_index": 0, "part": part} | where,
            ]
        else:
            item = reasoning_item(opened.item_id, text)
            part = item["summary"][0]
            events = [
                {"type": "response.reasoning_summary_text.done", "summary_index": 0, "text": text}
                | where,
                {"type": "response.reasoning_summary_part.done", "summary_index": 0, "part": part}
                | where,
            ]
        self.items.append(item)
        return [*events, done | {"item": item}]

    def _complete(self, response: GenerateResponse) -> list[dict[str, Any]]:
        status = status_of(response.finish_reason)
        out = []
        streamed = {item["type"] for item in self.items} | {o.kind for o in self.open}
        if response.output.text and "message" not in streamed:  # said only at the end
            out += self._delta("message", response.output.text)
        if "function_call" not in streamed:  # a runtime that parses its calls at the end
            for n, call in enumerate(response.output.tool_calls):
                function = call.function
                out += self._call(ToolCallDelta(n, call.id, function.name, function.arguments))
        out += self._close("incomplete" if status == "incomplete" else "completed")
        self.head.model = response.model
        self.final = self.head.body(status, list(self.items), response.usage)
        return [
            *out,
            {"type": _TERMINAL.get(status, "response.incomplete"), "response": self.final},
        ]


def _error_code(code: str) -> str:
    """The gateway's code as one of the codes OpenAI's response errors carry."""
    return "rate_limit_exceeded" if code == "rate_limited" else "server_error"
