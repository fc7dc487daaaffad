"""An Anthropic request as the native ``GenerateRequest``: content blocks as native
turns (tool_use as an assistant's ``tool_calls``, tool_result as ``tool`` messages,
thinking as the assistant's ``reasoning`` with its signature), tools and tool_choice in
OpenAI's shape, ``thinking`` as ``reasoning``, ``output_config.format`` as
``response_format``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from pluggably.errors import FeatureNotSupported, InvalidParameter
from pluggably.generation.schemas import GenerateRequest
from pluggably.surfaces.anthropic.blocks import (
    AnthropicImageBlock,
    AnthropicTextBlock,
    AnthropicThinkingBlock,
    AnthropicToolResultBlock,
    AnthropicToolUseBlock,
    AnthropicUrlSource,
    InputBlock,
    inward,
)
from pluggably.surfaces.anthropic.envelope import problems
from pluggably.surfaces.anthropic.shapes import (
    AnthropicConversation,
    AnthropicInputMessage,
    AnthropicMessagesRequest,
    AnthropicTool,
    ThinkingAdaptive,
    ThinkingEnabled,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
)

# Anthropic's effort levels above ``high`` ask for the most a native request can.
_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def generate_request(body: AnthropicMessagesRequest) -> GenerateRequest:
    """The native request for ``messages``. ``wait`` is set because the SDKs cannot
    follow a 202."""
    parameters: dict[str, Any] = {"max_tokens": body.max_tokens}
    if body.temperature is not None:
        parameters["temperature"] = body.temperature
    if body.top_p is not None:
        parameters["top_p"] = body.top_p
    if body.stop_sequences:
        parameters["stop"] = body.stop_sequences
    return native(body, parameters=parameters, stream=body.stream, wait=True)


def native(body: AnthropicConversation, **fields: Any) -> GenerateRequest:
    """The native request for ``body``'s conversation (``messages`` and
    ``count_tokens`` alike), with ``fields`` added. Images ride on the last user turn,
    as on ``/v1/generate``."""
    system = body.system
    if isinstance(system, list):
        system = "\n\n".join(b.text for b in system if b.text)
    request: dict[str, Any] = {
        "model": body.model,
        "modality": "text",
        "input": {
            "messages": [turn for m in body.messages for turn in _turns(m)],
            "images": [
                _image(b)
                for m in body.messages
                for b in m.blocks
                if isinstance(b, AnthropicImageBlock)
            ]
            or None,
        },
        "system_prompt": system or None,
        **_features(body),
        **fields,
    }
    try:
        return GenerateRequest.model_validate(request)
    except ValidationError as exc:  # the native limits: message size, image count, …
        raise InvalidParameter(problems(exc.errors(), skip=0)) from None


def _text(blocks: Sequence[InputBlock]) -> str:
    return "\n\n".join(b.text for b in blocks if isinstance(b, AnthropicTextBlock) and b.text)


def _image(block: AnthropicImageBlock) -> str:
    if isinstance(block.source, AnthropicUrlSource):
        raise FeatureNotSupported("Image URLs are not supported here; send the image as base64.")
    return f"data:{block.source.media_type};base64,{block.source.data}"


def _turns(message: AnthropicInputMessage) -> list[dict[str, Any]]:
    """One Anthropic turn as native turns: an assistant turn stays one (its tool_use
    blocks become ``tool_calls``, its first thinking block its ``reasoning``); a user
    turn's tool_result blocks become ``tool`` messages, then the rest a user message.
    redacted_thinking blocks are dropped."""
    blocks = message.blocks
    if message.role == "assistant":
        turn: dict[str, Any] = {"role": "assistant", "content": _text(blocks)}
        calls = [_call(b) for b in blocks if isinstance(b, AnthropicToolUseBlock)]
        if calls:
            turn["tool_calls"] = calls
        thinking = next((b for b in blocks if isinstance(b, AnthropicThinkingBlock)), None)
        if thinking is not None:
            turn["reasoning"] = thinking.thinking
            turn["reasoning_signature"] = inward(thinking.signature)
        return [turn]
    results = [_result(b) for b in blocks if isinstance(b, AnthropicToolResultBlock)]
    rest = [b for b in blocks if not isinstance(b, AnthropicToolResultBlock)]
    if rest or not results:
        results.append({"role": "user", "content": _text(rest)})
    return results


def _call(block: AnthropicToolUseBlock) -> dict[str, Any]:
    arguments = orjson.dumps(block.input).decode()
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": arguments},
    }


def _result(block: AnthropicToolResultBlock) -> dict[str, Any]:
    content = block.content
    if not isinstance(content, str):
        if any(isinstance(part, AnthropicImageBlock) for part in content):
            raise FeatureNotSupported(
                "Images in tool_result blocks are not supported here; give the result as "
                "text, and images in the user turn's own image blocks."
            )
        content = _text(content)
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": content}


def _features(body: AnthropicConversation) -> dict[str, Any]:
    """``tools``, ``tool_choice``, ``parallel_tool_calls``, ``response_format`` and
    ``reasoning`` of the native request, for those the body sets."""
    found: dict[str, Any] = {}
    if body.tools:
        found["tools"] = _tools(body.tools)
    choice = body.tool_choice
    if isinstance(choice, ToolChoiceNone):
        found["tool_choice"] = "none"
    elif isinstance(choice, ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool):
        if isinstance(choice, ToolChoiceTool):
            found["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            found["tool_choice"] = "auto" if isinstance(choice, ToolChoiceAuto) else "required"
        if choice.disable_parallel_tool_use:
            found["parallel_tool_calls"] = False
    config = body.output_config
    if config is not None and config.format is not None:
        spec = {"name": "response", "schema": config.format.schema_}
        found["response_format"] = {"type": "json_schema", "json_schema": spec}
    reasoning: dict[str, Any] = {}
    if isinstance(body.thinking, ThinkingEnabled):
        reasoning["max_tokens"] = body.thinking.budget_tokens
    if config is not None and config.effort is not None:
        reasoning["effort"] = _EFFORT[config.effort]
    if reasoning or isinstance(body.thinking, ThinkingAdaptive):
        found["reasoning"] = reasoning
    return found


def _tools(tools: list[AnthropicTool]) -> list[dict[str, Any]]:
    server = [f"{t.name} ({t.type})" for t in tools if t.type not in (None, "custom")]
    if server:
        raise FeatureNotSupported(
            f"Server tools are not supported here: {', '.join(server)}. Give client tools "
            "(name, description, input_schema) and run them yourself."
        )
    missing = [t.name for t in tools if t.input_schema is None]
    if missing:
        raise InvalidParameter(f"tools: {', '.join(missing)} needs an input_schema.")
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema,
            },
        }
        for t in tools
    ]
