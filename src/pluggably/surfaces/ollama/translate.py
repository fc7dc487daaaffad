"""Ollama's chat and generate requests as /v1/generate requests, and the native answers
(JSON and stream events) as Ollama's objects and NDJSON lines. Pure functions: no
I/O here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from pluggably.errors import FeatureNotSupported, InvalidParameter
from pluggably.generation.events import Completed, Event, Failed, ReasoningDelta, TextDelta
from pluggably.generation.schemas import GenerateRequest, GenerateResponse
from pluggably.messages import arguments_object
from pluggably.surfaces.bad_input import invalid, validation_details
from pluggably.surfaces.ollama.options import parameters
from pluggably.surfaces.ollama.shapes import (
    OllamaAnswerMessage,
    OllamaChatAnswer,
    OllamaChatRequest,
    OllamaFunctionCall,
    OllamaGenerateAnswer,
    OllamaGenerateRequest,
    OllamaMessage,
    OllamaToolCall,
)
from pluggably.tool_call_schema import ToolCallSpec

Kind = Literal["chat", "generate"]


# A Hugging Face name as Ollama takes it: hf.co/{owner}/{repo}:{quantization}.
_HF_NAME = re.compile(r"^(?:hf\.co|huggingface\.co)/([^:]+)(?::([^:]+))?$", re.IGNORECASE)


def model_name(name: str) -> str:
    """The registry id or ``provider:model`` an Ollama name stands for: clients add
    ``:latest`` to a name without a tag. A Hugging Face name has one spelling (host
    ``hf.co``, the quantization upper case), the one ``pull`` registers, as Ollama
    takes any spelling of it for the same model."""
    bare = name.removesuffix(":latest")
    hf = _HF_NAME.match(bare)
    if hf is not None:
        repo, quant = hf.groups()
        bare = f"hf.co/{repo}" + (f":{quant.upper()}" if quant else "")
    if not bare:  # ":latest" names no model (the native API would take the default)
        raise InvalidParameter("model is required")
    return bare


def now() -> str:
    """RFC 3339 in UTC with ``Z``, as Ollama writes ``created_at``."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# requests
def _features(body: OllamaChatRequest | OllamaGenerateRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if body.format == "json":
        fields["response_format"] = {"type": "json_object"}
    elif isinstance(body.format, dict):
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": body.format},
        }
    if body.think is True:
        fields["reasoning"] = {}
    elif isinstance(body.think, str):
        fields["reasoning"] = {"effort": body.think}
    return fields


def native(fields: dict[str, Any]) -> GenerateRequest:
    try:
        return GenerateRequest.model_validate(fields)
    except ValidationError as exc:  # a limit of the native request (sizes, counts)
        raise invalid(validation_details(exc.errors())) from None


def chat_request(body: OllamaChatRequest) -> GenerateRequest:
    messages, images = native_messages(body.messages)
    return native(
        {
            "model": model_name(body.model),
            "modality": "text",
            "input": {"messages": messages, "images": images or None},
            "parameters": parameters(body.options),
            "tools": body.tools,
            "stream": body.stream,
            "wait": True,
            **_features(body),
        }
    )


def generate_request(body: OllamaGenerateRequest) -> GenerateRequest:
    """``template``, ``context`` and ``raw`` are ignored (the model's own template
    formats the prompt); ``suffix`` (fill-in-the-middle) is refused."""
    if body.suffix:
        raise FeatureNotSupported("suffix (fill-in-the-middle) is not supported here.")
    return native(
        {
            "model": model_name(body.model),
            "modality": "text",
            "input": {"prompt": body.prompt or "", "images": body.images or None},
            "parameters": parameters(body.options),
            "system_prompt": body.system or None,
            "stream": body.stream,
            "wait": True,
            **_features(body),
        }
    )


def native_messages(turns: list[OllamaMessage]) -> tuple[list[dict[str, Any]], list[str]]:
    """The native messages, and the images of every turn (the native input carries one
    list per request). Ollama's tool calls carry no ids: each gets one here, and a tool
    result answers the open call of its ``tool_name`` (else the oldest open one)."""
    messages: list[dict[str, Any]] = []
    images: list[str] = []
    open_calls: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    for index, turn in enumerate(turns):
        message: dict[str, Any] = {"role": turn.role, "content": turn.content or ""}
        images += turn.images or []
        if turn.role == "assistant" and turn.tool_calls:
            calls = [(f"call_{index}_{j}", c.function) for j, c in enumerate(turn.tool_calls)]
            message["tool_calls"] = [_call(call_id, fn) for call_id, fn in calls]
            open_calls = [(call_id, fn.name) for call_id, fn in calls]
        if turn.role == "assistant" and turn.thinking:
            message["reasoning"] = turn.thinking
        if turn.role == "tool":
            message["tool_call_id"] = turn.tool_call_id or _answered(index, turn, open_calls)
        messages.append(message)
    return messages, images


def _call(call_id: str, function: OllamaFunctionCall) -> dict[str, Any]:
    arguments = orjson.dumps(function.arguments).decode()
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": function.name, "arguments": arguments},
    }


def _answered(index: int, turn: OllamaMessage, open_calls: list[tuple[str, str]]) -> str:
    for n, (_call_id, name) in enumerate(open_calls):
        if name == turn.tool_name:
            return open_calls.pop(n)[0]
    if open_calls:
        return open_calls.pop(0)[0]
    raise InvalidParameter(
        f"messages[{index}] is a tool result, but no assistant tool call before it is "
        "left to answer.",
        details=[{"loc": ["body", "messages", index], "msg": "no open tool call", "type": "value"}],
    )


# answers
def _ns(ms: float | None) -> int:
    return int((ms or 0) * 1_000_000)


def _done_reason(response: GenerateResponse) -> str:
    return "length" if response.finish_reason == "length" else "stop"


def timed(model: str, response: GenerateResponse) -> dict[str, Any]:
    """The final object's fields: counts, and durations in nanoseconds (prompt
    evaluation is the time to the first token, after the queue and the load)."""
    timings, usage = response.timings, response.usage
    waited = timings.queue_ms + timings.load_ms
    first = max((timings.first_token_ms or waited) - waited, 0.0)
    return {
        "model": model,
        "created_at": now(),
        "done": True,
        "done_reason": _done_reason(response),
        "total_duration": _ns(timings.total_ms),
        "load_duration": _ns(timings.load_ms),
        "prompt_eval_count": usage.prompt_tokens if usage else 0,
        "prompt_eval_duration": _ns(first),
        "eval_count": usage.completion_tokens if usage else 0,
        "eval_duration": _ns(max(timings.total_ms - waited - first, 0.0)),
    }


def tool_calls(calls: list[ToolCallSpec]) -> list[OllamaToolCall] | None:
    """Ollama's calls carry their arguments as an object (text that is not one is kept
    under ``arguments``' only key, ``value``)."""
    if not calls:
        return None
    out = []
    for call in calls:
        arguments = arguments_object(call.function.arguments)
        if arguments is None:
            arguments = {"value": call.function.arguments}
        out.append(
            OllamaToolCall(
                function=OllamaFunctionCall(name=call.function.name, arguments=arguments)
            )
        )
    return out


def chat_answer(
    model: str, response: GenerateResponse, *, final_only: bool = False
) -> OllamaChatAnswer:
    """The whole answer; ``final_only``: the last line of a stream (the text, thinking
    and calls were sent before it)."""
    output = response.output
    message = OllamaAnswerMessage(content="")
    if not final_only:
        message = OllamaAnswerMessage(
            content=output.text or "",
            thinking=output.reasoning,
            tool_calls=tool_calls(output.tool_calls),
        )
    return OllamaChatAnswer(message=message, **timed(model, response))


def generate_answer(
    model: str, response: GenerateResponse, *, final_only: bool = False
) -> OllamaGenerateAnswer:
    text = "" if final_only else response.output.text or ""
    thinking = None if final_only else response.output.reasoning
    return OllamaGenerateAnswer(response=text, thinking=thinking, **timed(model, response))


class LineWriter:
    """A generation's events as Ollama's NDJSON lines: one per text (or thinking)
    delta with ``done: false``, the tool calls in one line once the answer is complete
    (Ollama streams a call whole), then the final line with ``done: true`` and the
    counts; a failure is ``{"error": …}``. Queue and loading notices say nothing."""

    def __init__(self, kind: Kind, model: str) -> None:
        self.kind, self.model = kind, model
        self.completed: GenerateResponse | None = None

    def _line(self, content: str = "", thinking: str | None = None) -> dict[str, Any]:
        head: dict[str, Any] = {"model": self.model, "created_at": now()}
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking is not None:
                message["thinking"] = thinking
            return {**head, "message": message, "done": False}
        line = {**head, "response": content, "done": False}
        return line if thinking is None else {**line, "thinking": thinking}

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._line(event.text)] if event.text else []
        if isinstance(event, ReasoningDelta):
            return [self._line(thinking=event.text)] if event.text else []
        if isinstance(event, Completed):
            self.completed = event.response
            return self._finish(event.response)
        if isinstance(event, Failed):
            return [{"error": event.error.message}]
        return []

    def _finish(self, response: GenerateResponse) -> list[dict[str, Any]]:
        if self.kind == "generate":
            return [
                generate_answer(self.model, response, final_only=True).model_dump(exclude_none=True)
            ]
        lines = []
        calls = tool_calls(response.output.tool_calls)
        if calls:
            line = self._line()
            line["message"]["tool_calls"] = [c.model_dump() for c in calls]
            lines.append(line)
        final = chat_answer(self.model, response, final_only=True)
        return [*lines, final.model_dump(exclude_none=True)]
