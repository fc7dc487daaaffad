"""Typed events of the server's SSE streams (API.md §3): generation frames, request
status changes, download job progress; and the reading of ``data:`` frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict

from pluggably import deltas
from pluggably.client.errors import PluggablyError, ProtocolError, error_class
from pluggably.generation.schemas import (
    Accepted,
    GenerateResponse,
    Modality,
)
from pluggably.tool_call_schema import FunctionCall, ToolCallSpec

RequestState = Literal["queued", "running", "completed", "failed", "cancelled"]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Queued(_Event):
    """Waiting in a local model's queue (sent again when the position changes)."""

    event: Literal["queued"] = "queued"
    request_id: str
    queue_position: int | None = None
    estimated_wait_ms: int | None = None


class Loading(_Event):
    """The model is being loaded before it can answer."""

    event: Literal["loading"] = "loading"
    request_id: str | None = None
    model: str


class ModelSelected(_Event):
    """The model that answers (after any fallbacks)."""

    event: Literal["model_selected"] = "model_selected"
    request_id: str
    model: str
    provider: str
    modality: Modality
    fallback_used: bool
    fallback_reason: str | None = None


class TextDelta(_Event):
    """The next piece of generated text."""

    event: Literal["text_delta"] = "text_delta"
    text: str


class ToolCallDelta(_Event):
    """A piece of a tool call: ``id`` and ``name`` in the first piece of each
    ``index``, the arguments' JSON text in pieces (``collect`` joins them)."""

    event: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ReasoningDelta(_Event):
    """The next piece of the model's visible reasoning; ``signature`` (its vendor's)
    comes once, at the end of the reasoning."""

    event: Literal["reasoning_delta"] = "reasoning_delta"
    text: str
    signature: str | None = None


class Complete(_Event):
    """The end of a successful generation: the response, whose ``output.text`` is None
    in a stream (the text came as deltas; ``collect`` puts it back)."""

    event: Literal["complete"] = "complete"
    response: GenerateResponse


class StreamError(_Event):
    """The generation failed; the stream ends after this event."""

    event: Literal["error"] = "error"
    code: str
    message: str

    def exception(self) -> PluggablyError:
        return error_class(self.code, None)(self.message, code=self.code)


class StatusChanged(_Event):
    """A request's status (``GET /v1/requests/{id}/events``)."""

    event: Literal["status"] = "status"
    request_id: str
    status: RequestState


class UnknownEvent(_Event):
    """A frame this client does not know (a newer server): its JSON as is."""

    event: Literal["unknown"] = "unknown"
    data: dict[str, Any]


StreamEvent: TypeAlias = (
    Queued
    | Loading
    | ModelSelected
    | TextDelta
    | ToolCallDelta
    | ReasoningDelta
    | Complete
    | StreamError
    | StatusChanged
    | UnknownEvent
)

_BY_NAME: dict[
    str,
    type[Queued] | type[Loading] | type[ModelSelected] | type[StreamError] | type[StatusChanged],
] = {
    "queued": Queued,
    "loading": Loading,
    "model_selected": ModelSelected,
    "error": StreamError,
    "status": StatusChanged,
}


def parse_event(frame: dict[str, Any]) -> StreamEvent:
    """The typed event of one JSON frame of a generation or request stream."""
    if "choices" in frame:  # the OpenAI chunk shape of deltas
        return _delta((frame["choices"] or [{}])[0].get("delta") or {})
    name = frame.get("event")
    if name == "complete":
        body = {k: v for k, v in frame.items() if k != "event"}
        return Complete(response=GenerateResponse.model_validate(body))
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        return UnknownEvent(data=frame)
    return cls.model_validate(frame)


def _delta(delta: dict[str, Any]) -> TextDelta | ToolCallDelta | ReasoningDelta:
    if delta.get("tool_calls"):
        call = delta["tool_calls"][0]
        function = call.get("function") or {}
        return ToolCallDelta(
            index=call.get("index", 0),
            id=call.get("id"),
            name=function.get("name"),
            arguments=function.get("arguments") or "",
        )
    if "reasoning" in delta:
        return ReasoningDelta(
            text=str(delta["reasoning"] or ""), signature=delta.get("reasoning_signature")
        )
    return TextDelta(text=str(delta.get("content") or ""))


def events_from_json(status_code: int, data: Any) -> list[StreamEvent]:
    """What a JSON answer to a streaming request means as events: image and 3D
    generation ignore ``stream`` (200, the response), and a busy local model queues
    the request (202; follow it with ``events(request_id)`` or ``wait_for``)."""
    if status_code == 202:
        accepted = Accepted.model_validate(data)
        return [
            Queued(
                request_id=accepted.request_id,
                queue_position=accepted.queue_position,
                estimated_wait_ms=accepted.estimated_wait_ms,
            )
        ]
    response = GenerateResponse.model_validate(data)
    return [
        ModelSelected(
            request_id=response.request_id,
            model=response.model,
            provider=response.provider,
            modality=response.modality,
            fallback_used=response.selection.fallback_used,
            fallback_reason=response.selection.fallback_reason,
        ),
        Complete(response=response),
    ]


class SSEDecoder:
    """Feed it the lines of an event stream: it answers each complete frame's JSON,
    ``DONE`` at ``[DONE]``, and None for everything else (comments, partial frames)."""

    DONE: Any = object()

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> Any:
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
            return None
        if line or not self._data:  # ': keep-alive', other fields, or an empty frame
            return None
        payload, self._data = "\n".join(self._data), []
        if payload == "[DONE]":
            return self.DONE
        try:
            frame = json.loads(payload)
        except ValueError:
            raise ProtocolError(
                f"the server sent an unreadable event: {payload[:80]!r}", code="bad_event"
            ) from None
        if not isinstance(frame, dict):
            raise ProtocolError(f"unexpected event: {payload[:80]!r}", code="bad_event")
        return frame


class _Collector:
    """What ``collect`` and ``acollect`` keep of a generation stream, one event at a
    time: the text deltas and the final response; a ``StreamError`` is raised."""

    def __init__(self) -> None:
        self.whole = deltas.Assembly()
        self.response: GenerateResponse | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self.whole.text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self.whole.tool_call(
                deltas.ToolCallDelta(event.index, event.id, event.name, event.arguments)
            )
        elif isinstance(event, ReasoningDelta):
            self.whole.reasoning_delta(deltas.ReasoningDelta(event.text, event.signature))
        elif isinstance(event, Complete):
            self.response = event.response
        elif isinstance(event, StreamError):
            raise event.exception()

    def read(self, events: Iterable[StreamEvent]) -> GenerateResponse:
        """``collect``: a sync stream's events, then the result (``acollect`` adds
        its own)."""
        for event in events:
            self.add(event)
        return self.result()

    def result(self) -> GenerateResponse:
        """The final response, with the streamed text, tool calls and reasoning in
        ``output``."""
        response = self.response
        if response is None:
            raise ProtocolError("the stream ended without a result", code="incomplete_stream")
        whole, output = self.whole, response.output
        streamed: dict[str, Any] = {}
        if output.text is None and whole.text:
            streamed["text"] = "".join(whole.text)
        if not output.tool_calls and (calls := whole.tool_calls):
            streamed["tool_calls"] = [
                ToolCallSpec(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
                for c in calls
            ]
        if output.reasoning is None and whole.reasoning:
            streamed["reasoning"] = whole.reasoning_text
        if streamed:
            output = output.model_copy(update=streamed)
            response = response.model_copy(update={"output": output})
        return response


def collect(events: Iterable[StreamEvent]) -> GenerateResponse:
    """Consume a generation stream: the final response with the streamed text in
    ``output.text``; a ``StreamError`` is raised as its ``PluggablyError``."""
    return _Collector().read(events)


async def acollect(events: AsyncIterable[StreamEvent]) -> GenerateResponse:
    """``collect`` for an async stream."""
    collector = _Collector()
    async for event in events:
        collector.add(event)
    return collector.result()
