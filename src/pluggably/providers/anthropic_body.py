"""The body of an Anthropic Messages call (``POST /v1/messages`` and its
``count_tokens``): the conversation as alternating user/assistant turns of content
blocks (text, images, thinking, ``tool_use``, ``tool_result``), the tools and the tool
choice, extended thinking, and the output format."""

from __future__ import annotations

import dataclasses
from typing import Any

from pluggably.errors import InvalidParameter
from pluggably.messages import (
    Features,
    Message,
    ReasoningSpec,
    ToolCall,
    arguments_object,
    signature_for,
)
from pluggably.providers.anthropic_schema import strict_schema
from pluggably.providers.base import ProviderCall
from pluggably.stops import as_list

ANTHROPIC = "anthropic"  # the mark on Anthropic's thinking signatures (messages.signed)

# Anthropic has no default: every request must say how many tokens it may produce.
DEFAULT_MAX_TOKENS = 1024
# The gateway's schema allows OpenAI's 0-2 range; Anthropic rejects anything above 1.
MAX_TEMPERATURE = 1.0
# ``json_object`` has no native counterpart (Anthropic's structured output needs a
# schema, and a forced tool would clash with the caller's tools and with thinking), so
# the model is asked for JSON in the system prompt; ``json_schema`` is native.
JSON_INSTRUCTION = "Answer with a single valid JSON value only: no prose, no Markdown code fences."
# Thinking budgets by effort; Anthropic's floor is 1024 tokens.
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
# count_tokens takes the Messages body less what only shapes the generation.
_GENERATION_ONLY = ("max_tokens", "stream", "temperature", "top_p", "stop_sequences")


def _blocks(message: Message) -> list[dict[str, Any]]:
    """Images first (Anthropic recommends them before the question), then the text;
    empty text blocks are left out because the API rejects them."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": img.mime, "data": img.data_b64},
        }
        for img in message.images
    ]
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    return blocks


def _tool_input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the object ``tool_use.input`` must be."""
    value = arguments_object(call.arguments)
    if value is None:
        raise InvalidParameter(
            f"The arguments of tool call '{call.id}' ({call.name}) are not a JSON object; "
            "Anthropic needs each earlier tool call's arguments as one."
        )
    return value


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    """The thinking that led to the turn (only when signed: Anthropic refuses unsigned
    thinking), its text, then its tool calls."""
    blocks: list[dict[str, Any]] = []
    signature = signature_for(ANTHROPIC, message.reasoning_signature)
    if signature:  # a signed block goes back even when its text was withheld
        blocks.append(
            {"type": "thinking", "thinking": message.reasoning or "", "signature": signature}
        )
    blocks += _blocks(message)
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call)}
        for call in message.tool_calls
    ]
    return blocks


def _tool_result(message: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if message.text:  # an empty result is sent without content: the API refuses ""
        block["content"] = message.text
    return block


def _turn(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        return "user", [_tool_result(message)]
    if message.role == "assistant":
        return "assistant", _assistant_blocks(message)
    return message.role, _blocks(message)


def turns(messages: list[Message]) -> list[dict[str, Any]]:
    """User/assistant turns; consecutive ones of the same role merged, since the API
    requires the roles to alternate (so tool results, which are user content, share one
    user turn with each other and with the user text after them). A last assistant turn
    is a prefill, which Anthropic continues; it refuses one that ends in whitespace, so
    that is trimmed."""
    if messages and messages[-1].role == "assistant":
        last = messages[-1]
        messages = [*messages[:-1], dataclasses.replace(last, text=last.text.rstrip())]
    result: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue
        if result and result[-1]["role"] == role:
            result[-1]["content"] += blocks
        else:
            result.append({"role": role, "content": blocks})
    return result


def _system(call: ProviderCall) -> str:
    parts = [m.text for m in call.messages if m.role == "system" and m.text]
    fmt = call.features.response_format
    if fmt is not None and fmt.type == "json_object":
        parts.append(JSON_INSTRUCTION)
    return "\n\n".join(parts)


def thinking_budget(reasoning: ReasoningSpec) -> int:
    budget = reasoning.max_tokens or THINKING_BUDGETS[reasoning.effort or "medium"]
    return max(MIN_THINKING_BUDGET, budget)


def _tools(body: dict[str, Any], features: Features) -> None:
    """``tools`` and ``tool_choice``; ``parallel_tool_calls: false`` is Anthropic's
    ``disable_parallel_tool_use`` on the choice (which ``none`` does not take)."""
    if not features.tools:
        return
    tools: list[dict[str, Any]] = []
    for tool in features.tools:
        spec: dict[str, Any] = {
            "name": tool.name,
            "input_schema": {"type": "object", **tool.parameters},
        }
        if tool.description:
            spec["description"] = tool.description
        if tool.strict is not None:
            spec["strict"] = tool.strict
        if tool.strict:  # a strict tool's schema is held like a structured output's
            spec["input_schema"] = strict_schema(spec["input_schema"])
        tools.append(spec)
    body["tools"] = tools
    choice = features.tool_choice
    kinds = {"auto": "auto", "none": "none", "required": "any", "function": "tool"}
    tool_choice: dict[str, Any] = {"type": kinds[choice.mode]}
    if choice.mode == "function":
        tool_choice["name"] = choice.name
    if features.parallel_tool_calls is False and choice.mode != "none":
        tool_choice["disable_parallel_tool_use"] = True
    body["tool_choice"] = tool_choice


def _unsigned_tool_loop(messages: list[Message]) -> bool:
    """The conversation is in a tool loop (its last assistant turn called tools and only
    their results follow) whose call came without Anthropic's signed thinking: from
    another vendor, or from a client that cannot send signatures back (OpenAI's
    format). Anthropic refuses thinking then (the loop's assistant turn must start with
    a thinking block), so this call goes without."""
    for message in reversed(messages):
        if message.role == "assistant":
            signed_here = signature_for(ANTHROPIC, message.reasoning_signature)
            return bool(message.tool_calls) and signed_here is None
        if message.role != "tool":
            return False
    return False


def messages_body(call: ProviderCall, *, stream: bool) -> dict[str, Any]:
    params, features = call.parameters, call.features
    body: dict[str, Any] = {
        "model": call.model,
        "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": turns(call.messages),
    }
    if system := _system(call):
        body["system"] = system
    if features.reasoning is not None and not _unsigned_tool_loop(call.messages):
        budget = thinking_budget(features.reasoning)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        # max_tokens counts the thinking too: the caller's max_tokens is the answer's.
        body["max_tokens"] += budget
    if "thinking" not in body and params.get("temperature") is not None:
        # With thinking on, Anthropic takes no temperature but its default.
        body["temperature"] = min(float(params["temperature"]), MAX_TEMPERATURE)
    if params.get("top_p") is not None and "thinking" not in body:
        body["top_p"] = params["top_p"]
    if stops := as_list(params.get("stop")):
        body["stop_sequences"] = stops
    _tools(body, features)
    if (schema := features.json_schema) is not None:
        format_ = {"type": "json_schema", "schema": strict_schema(schema)}
        body["output_config"] = {"format": format_}
    # `seed` is deliberately dropped: the API has no such field and would 400 on it.
    if stream:
        body["stream"] = True
    return body


def count_body(call: ProviderCall) -> dict[str, Any]:
    """The body ``/v1/messages/count_tokens`` takes: the Messages body without the
    fields that only shape the generation."""
    body = messages_body(call, stream=False)
    for name in _GENERATION_ONLY:
        body.pop(name, None)
    return body
