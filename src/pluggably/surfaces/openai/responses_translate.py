"""A Responses request as a native /v1/generate request, and a native answer as the
Responses API's response object (the fields the request set, echoed as OpenAI does).
Pure functions: no I/O here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pluggably.errors import FeatureNotSupported
from pluggably.generation.schemas import GenerateRequest, GenerateResponse, Output, UsageInfo
from pluggably.ids import new_id
from pluggably.surfaces.bad_input import invalid, validation_details
from pluggably.surfaces.openai.features import EFFORT, checked
from pluggably.surfaces.openai.fields import field_error
from pluggably.surfaces.openai.responses_input import Item, native_messages
from pluggably.surfaces.openai.responses_shapes import ResponsesRequest
from pluggably.surfaces.openai.translate import PARAM_NAMES


# requests
def _refuse_unsupported(body: ResponsesRequest) -> None:
    if body.background:
        raise field_error(
            ["background"], "Background responses are not supported here.", FeatureNotSupported
        )
    for name in ("conversation", "prompt"):
        if getattr(body, name) is not None:
            raise field_error(
                [name],
                f"'{name}' is not supported here; send the input (and previous_response_id).",
                FeatureNotSupported,
            )
    if body.top_logprobs:
        raise field_error(["top_logprobs"], "logprobs are not available here.", FeatureNotSupported)


def _tools(body: ResponsesRequest) -> dict[str, Any]:
    tools = []
    for i, tool in enumerate(body.tools or []):
        if tool.type != "function":
            raise field_error(
                ["tools", i, "type"],
                f"Tools of type '{tool.type}' are not supported here; only function tools are.",
                FeatureNotSupported,
            )
        if not tool.name:
            raise field_error(["tools", i, "name"], "A function tool needs a name.")
        spec = tool.model_dump(include={"name", "description", "parameters", "strict"})
        tools.append(
            {"type": "function", "function": {k: v for k, v in spec.items() if v is not None}}
        )
    fields: dict[str, Any] = {"tools": tools} if tools else {}
    if body.parallel_tool_calls is not None and tools:
        fields["parallel_tool_calls"] = body.parallel_tool_calls
    choice = body.tool_choice
    if choice is None or isinstance(choice, str):
        if choice is not None:
            fields["tool_choice"] = choice
    elif choice.type != "function" or not choice.name:
        raise field_error(
            ["tool_choice"],
            f"tool_choice of type '{choice.type}' is not supported here; name a function "
            "tool or send auto, none or required.",
            FeatureNotSupported,
        )
    else:
        fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    return checked(fields, "tool_choice")


def _features(body: ResponsesRequest) -> dict[str, Any]:
    fields = _tools(body)
    fmt = body.text.format if body.text else None
    if fmt is not None and fmt.type == "json_object":
        fields["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise field_error(["text", "format", "schema"], "A json_schema format needs schema.")
        spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema_}
        spec |= {
            k: v
            for k, v in (("strict", fmt.strict), ("description", fmt.description))
            if v is not None
        }
        fields["response_format"] = {"type": "json_schema", "json_schema": spec}
    effort = body.reasoning.effort if body.reasoning else None
    if effort is not None and effort != "none":
        if effort not in EFFORT:
            raise field_error(
                ["reasoning", "effort"],
                f"reasoning.effort must be one of none, {', '.join(EFFORT)}; not {effort!r}.",
            )
        fields["reasoning"] = {"effort": EFFORT[effort]}
    return fields


def _parameters(body: ResponsesRequest) -> dict[str, Any]:
    params = {
        name: value
        for name in ("temperature", "top_p")
        if (value := getattr(body, name)) is not None
    }
    if body.max_output_tokens is not None:
        params["max_tokens"] = body.max_output_tokens
    return params


def native_request(body: ResponsesRequest, conversation: list[Item]) -> GenerateRequest:
    """The native request answering ``conversation`` (the stored chain, then this
    request's items), with ``instructions`` as its system prompt."""
    _refuse_unsupported(body)
    messages, images = native_messages(conversation)
    if body.instructions:
        messages.insert(0, {"role": "system", "content": body.instructions})
    if not any(m["role"] != "system" for m in messages):
        raise field_error(["input"], "Send input: a string, or a list of items.")
    fields = {
        "model": body.model,
        "modality": "text",
        "input": {"messages": messages, "images": images or None},
        "parameters": _parameters(body),
        "stream": bool(body.stream),
        "wait": True,
        **_features(body),
    }
    try:
        return GenerateRequest.model_validate(fields)
    except ValidationError as exc:  # a limit of the native request (sizes, counts)
        raise invalid(validation_details(exc.errors()), names=PARAM_NAMES) from None


# responses
def _text_config(body: ResponsesRequest) -> dict[str, Any]:
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return {"format": {"type": "text"}}
    if fmt.type == "json_object":
        return {"format": {"type": "json_object"}}
    return {
        "format": {
            "type": "json_schema",
            "name": fmt.name or "response",
            "schema": fmt.schema_,
            "strict": fmt.strict,
            "description": fmt.description,
        }
    }


def _echo(body: ResponsesRequest) -> dict[str, Any]:
    """The request's fields that the response object repeats."""
    choice = body.tool_choice
    return {
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": body.reasoning.model_dump() if body.reasoning else None,
        "store": body.store is not False,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "text": _text_config(body),
        "tool_choice": choice.model_dump()
        if choice is not None and not isinstance(choice, str)
        else (choice or "auto"),
        "tools": [t.model_dump(exclude_none=True) for t in body.tools or []],
        "truncation": "disabled",
        "background": False,
    }


@dataclass
class ResponseHead:
    """What every state of one response carries: its id, its creation time, the
    request's echoed fields, and the model once one answers."""

    id: str
    echo: dict[str, Any]
    model: str
    created_at: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def of(cls, body: ResponsesRequest, request_id: str) -> ResponseHead:
        """The response of a native request: ``resp_<hex>`` of its request id, so the
        request record (``/v1/requests/req_<hex>``) is found from it."""
        return cls(f"resp_{request_id.removeprefix('req_')}", _echo(body), body.model or "auto")

    def body(
        self,
        status: str,
        output: list[Item],
        usage: UsageInfo | None = None,
        error: dict[str, Any] | None = None,
    ) -> Item:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": (
                {"reason": "max_output_tokens"} if status == "incomplete" else None
            ),
            "model": self.model,
            "output": output,
            "usage": response_usage(usage),
            **self.echo,
        }


def response_usage(info: UsageInfo | None) -> Item | None:
    if info is None:
        return None
    return {
        "input_tokens": info.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": info.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": info.total_tokens,
    }


def status_of(finish_reason: str) -> str:
    if finish_reason == "length":
        return "incomplete"
    if finish_reason == "cancelled":
        return "cancelled"
    return "failed" if finish_reason == "error" else "completed"


def message_item(item_id: str, text: str, status: str) -> Item:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> Item:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def reasoning_item(item_id: str, text: str) -> Item:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def output_items(output: Output, status: str) -> list[Item]:
    """The answer as output items: its reasoning, its text (a message, also when
    empty unless the answer is only calls), its function calls."""
    items = [reasoning_item(new_id("rs"), output.reasoning)] if output.reasoning else []
    message_status = "incomplete" if status == "incomplete" else "completed"
    if output.text or not output.tool_calls:
        items.append(message_item(new_id("msg"), output.text or "", message_status))
    items += [
        call_item(new_id("fc"), c.id, c.function.name, c.function.arguments, "completed")
        for c in output.tool_calls
    ]
    return items


def response_object(head: ResponseHead, response: GenerateResponse) -> Item:
    head.model = response.model
    status = status_of(response.finish_reason)
    return head.body(status, output_items(response.output, status), response.usage)
