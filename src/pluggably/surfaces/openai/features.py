"""What an OpenAI chat request asks beyond the conversation, as the native request's
fields (``tools``, ``tool_choice``, ``parallel_tool_calls``, ``response_format``,
``reasoning``), and the model's tool calls and reasoning as OpenAI answers them.

The legacy ``functions``/``function_call`` of older clients are function tools and a
tool choice; their answer is the legacy ``function_call`` (one call per turn)."""

from __future__ import annotations

from typing import Any

from pluggably.errors import FeatureNotSupported, InvalidParameter
from pluggably.generation.schemas import Output
from pluggably.surfaces.openai.fields import field_error
from pluggably.surfaces.openai.shapes import (
    OpenAIAssistantMessage,
    OpenAIChatCompletionRequest,
    OpenAIFunction,
    OpenAIFunctionCall,
    OpenAIResponseFormat,
    OpenAIToolCall,
)

# OpenAI's efforts on the native three: the lightest and the heaviest as their nearest.
EFFORT = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}


def native_features(body: OpenAIChatCompletionRequest) -> dict[str, Any]:
    fields = _tools(body)
    if body.response_format is not None and body.response_format.type != "text":
        fields["response_format"] = _response_format(body.response_format)
    if body.reasoning_effort is not None and body.reasoning_effort != "none":
        effort = EFFORT.get(body.reasoning_effort)
        if effort is None:
            raise field_error(
                ["reasoning_effort"],
                f"reasoning_effort must be one of none, {', '.join(EFFORT)}; "
                f"not {body.reasoning_effort!r}.",
            )
        fields["reasoning"] = {"effort": effort}
    return fields


def _tools(body: OpenAIChatCompletionRequest) -> dict[str, Any]:
    if body.tools and body.functions:
        raise field_error(["functions"], "Send tools or the legacy functions, not both.")
    if body.functions:
        fields = {"tools": [_tool(f) for f in body.functions], "parallel_tool_calls": False}
        legacy = body.function_call
        if legacy is not None:
            fields["tool_choice"] = legacy if isinstance(legacy, str) else _named(legacy.name)
        return checked(fields, "function_call")
    tools = []
    for i, tool in enumerate(body.tools or []):
        if tool.type != "function":
            raise field_error(
                ["tools", i, "type"],
                f"Tools of type '{tool.type}' are not supported here; only function tools are.",
                FeatureNotSupported,
            )
        if tool.function is None:
            raise field_error(["tools", i, "function"], "A function tool needs function.")
        tools.append(_tool(tool.function))
    fields = {"tools": tools} if tools else {}
    if body.parallel_tool_calls is not None and tools:
        fields["parallel_tool_calls"] = body.parallel_tool_calls
    choice = body.tool_choice
    if isinstance(choice, str) or choice is None:
        if choice is not None:
            fields["tool_choice"] = choice
        return checked(fields, "tool_choice")
    if choice.type != "function":
        raise field_error(
            ["tool_choice", "type"],
            f"tool_choice of type '{choice.type}' is not supported here; name a function "
            "or send auto, none or required.",
            FeatureNotSupported,
        )
    if choice.function is None:
        raise field_error(["tool_choice", "function"], "A named tool_choice needs function.")
    return checked(fields | {"tool_choice": _named(choice.function.name)}, "tool_choice")


def _tool(function: OpenAIFunction) -> dict[str, Any]:
    return {"type": "function", "function": function.model_dump(exclude_none=True)}


def _named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def checked(fields: dict[str, Any], param: str) -> dict[str, Any]:
    """A choice that forces a call needs the tool it forces; ``auto`` and ``none``
    without tools say nothing (clients send them with an empty tool list)."""
    choice = fields.get("tool_choice")
    names = {tool["function"]["name"] for tool in fields.get("tools", ())}
    if isinstance(choice, dict) and choice["function"]["name"] not in names:
        name = choice["function"]["name"]
        raise field_error([param], f"{param} names the function '{name}', which is not a tool.")
    if choice == "required" and not names:
        raise field_error([param], f"{param} 'required' needs tools.")
    if not names:
        fields.pop("tool_choice", None)
    return fields


def _response_format(fmt: OpenAIResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.json_schema is None:
        raise field_error(
            ["response_format", "json_schema"],
            "type json_schema needs json_schema: {name, schema}.",
            InvalidParameter,
        )
    spec = fmt.json_schema.model_dump(by_alias=True, exclude_none=True)
    return {"type": "json_schema", "json_schema": spec}


# responses
def finish_reason(native: str, *, legacy: bool = False) -> str:
    if native == "tool_calls":
        return "function_call" if legacy else "tool_calls"
    return "length" if native == "length" else "stop"


def assistant_message(output: Output, *, legacy: bool = False) -> OpenAIAssistantMessage:
    """The answer's message: ``content`` null when it is only tool calls."""
    calls = [
        OpenAIToolCall(
            id=call.id,
            function=OpenAIFunctionCall(name=call.function.name, arguments=call.function.arguments),
        )
        for call in output.tool_calls
    ]
    content = output.text or (None if calls else "")
    if legacy:
        return OpenAIAssistantMessage(
            content=content,
            function_call=calls[0].function if calls else None,
            reasoning_content=output.reasoning,
        )
    return OpenAIAssistantMessage(
        content=content, tool_calls=calls or None, reasoning_content=output.reasoning
    )
