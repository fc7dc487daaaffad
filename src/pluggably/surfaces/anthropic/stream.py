"""A generation's events as Anthropic's stream: ``message_start``, then each content
block in turn (``content_block_start``, its deltas, ``content_block_stop``), then
``message_delta`` (stop reason, usage) and ``message_stop``, or an ``error``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pluggably.deltas import ReasoningDelta, ToolCallDelta
from pluggably.generation.events import Completed, Event, Failed, Selected, TextDelta
from pluggably.generation.schemas import GenerateResponse
from pluggably.surfaces.anthropic.answer import stop_reason
from pluggably.surfaces.anthropic.blocks import outward
from pluggably.surfaces.anthropic.envelope import error_body, status_of

Frames = list[dict[str, Any]]


@dataclass
class StreamTranslator:
    """Blocks open as their first piece comes and close when a piece of another kind
    (or another tool call) comes, or at the end: a thinking block (``thinking_delta``…,
    then ``signature_delta``), a text block (``text_delta``…), a tool_use block per call
    (``input_json_delta``…). ``ping`` follows the first block's start, as Anthropic
    sends it. Queue and loading notices are dropped: the client just waits. Input
    tokens are known only at the end, so ``message_start`` says 0 and
    ``message_delta`` carries the real count."""

    message_id: str
    started: bool = False
    finished: bool = False
    _index: int = -1  # the open block's index (-1: none opened yet)
    _open: str | None = None  # the open block's type
    _call: int | None = None  # the open tool_use block's call index
    _signed: bool = False  # the open thinking block got its signature

    def events(self, event: Event) -> Frames:
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ReasoningDelta):
            return self._thinking(event)
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, Selected):
            return self._start(event.reported_model)
        if isinstance(event, Completed):
            return self._end(event.response)
        if isinstance(event, Failed):
            return [self.error(event.error.code, event.error.message)]
        return []

    def error(self, code: str, message: str) -> dict[str, Any]:
        self.finished = True
        return error_body(status_of(code), message)

    def _text(self, text: str) -> Frames:
        frames = [] if self._open == "text" else self._block({"type": "text", "text": ""})
        return [*frames, self._delta({"type": "text_delta", "text": text})]

    def _thinking(self, delta: ReasoningDelta) -> Frames:
        frames: Frames = []
        if self._open != "thinking" or (self._signed and delta.text):
            frames = self._block({"type": "thinking", "thinking": "", "signature": ""})
        if delta.text:
            frames.append(self._delta({"type": "thinking_delta", "thinking": delta.text}))
        if delta.signature:
            self._signed = True
            signature = outward(delta.signature)
            frames.append(self._delta({"type": "signature_delta", "signature": signature}))
        return frames

    def _tool_call(self, delta: ToolCallDelta) -> Frames:
        frames: Frames = []
        if self._open != "tool_use" or self._call != delta.index:
            call_id = delta.id or f"call_{delta.index}"  # as the native assembly names it
            block = {"type": "tool_use", "id": call_id, "name": delta.name or "", "input": {}}
            frames = self._block(block)
            self._call = delta.index
        if delta.arguments:
            json_delta = {"type": "input_json_delta", "partial_json": delta.arguments}
            frames.append(self._delta(json_delta))
        return frames

    def _block(self, content_block: dict[str, Any]) -> Frames:
        """Close the open block, open ``content_block`` after it."""
        frames = self._close()
        self._index += 1
        self._open, self._signed = content_block["type"], False
        start = {"type": "content_block_start", "index": self._index}
        frames.append({**start, "content_block": content_block})
        if self._index == 0:
            frames.append({"type": "ping"})
        return frames

    def _close(self) -> Frames:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _start(self, model: str) -> Frames:
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _end(self, response: GenerateResponse) -> Frames:
        """The last block closed (an empty text block when nothing came, as Anthropic
        answers an empty message), then the stop reason and usage."""
        self.finished = True
        frames = self._block({"type": "text", "text": ""}) if self._index < 0 else []
        frames += self._close()
        usage = response.usage
        sequence = response.stop_sequence
        reason = stop_reason(response.finish_reason, sequence)
        return [
            *frames,
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": reason,
                    "stop_sequence": sequence if reason == "stop_sequence" else None,
                },
                "usage": {
                    "input_tokens": usage.prompt_tokens if usage else 0,
                    "output_tokens": usage.completion_tokens if usage else 0,
                },
            },
            {"type": "message_stop"},
        ]
