"""A native answer as Anthropic's: the message's content blocks (thinking, text,
tool_use), its stop reason and its id."""

from __future__ import annotations

from typing import Any

from pluggably.generation.schemas import GenerateResponse, Output
from pluggably.messages import arguments_object
from pluggably.observability.logging import get_logger
from pluggably.surfaces.anthropic.blocks import (
    AnthropicTextContent,
    AnthropicThinkingContent,
    AnthropicToolUseContent,
    OutputBlock,
    outward,
)
from pluggably.surfaces.anthropic.shapes import AnthropicMessage, AnthropicUsage, StopReason

log = get_logger("pluggably.surfaces.anthropic")

_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


def stop_reason(finish_reason: str, stop_sequence: str | None = None) -> StopReason:
    """``stop`` → ``end_turn``, or ``stop_sequence`` when the native result names the
    caller's stop sequence that ended the text (local models, Anthropic, the sequences
    the gateway applies itself; an OpenAI-compatible upstream that stopped at one says
    only ``stop``, so that is ``end_turn``); ``length`` → ``max_tokens``;
    ``tool_calls`` → ``tool_use``."""
    if finish_reason == "stop" and stop_sequence:
        return "stop_sequence"
    return _STOP.get(finish_reason, "end_turn")


def message_id(request_id: str) -> str:
    """``msg_`` and the hex of the gateway's request id, so the two can be matched."""
    return f"msg_{request_id.removeprefix('req_')}"


def tool_input(arguments: str, name: str) -> dict[str, Any]:
    """A tool call's arguments as tool_use ``input``. Anthropic's clients need an
    object: arguments a model wrote that are not one are logged and become ``{}``."""
    parsed = arguments_object(arguments)
    if parsed is not None:
        return parsed
    # The arguments may hold what the user wrote: only their size is logged.
    log.warning("tool_arguments_not_an_object", tool=name, length=len(arguments))
    return {}


def content_of(output: Output) -> list[OutputBlock]:
    """Thinking (when the model reasoned), text (always, unless the model only called
    tools), then one tool_use block per call, with the upstream's call id."""
    blocks: list[OutputBlock] = []
    if output.reasoning or output.reasoning_signature:
        signature = outward(output.reasoning_signature)
        blocks.append(
            AnthropicThinkingContent(thinking=output.reasoning or "", signature=signature)
        )
    if output.text or not output.tool_calls:
        blocks.append(AnthropicTextContent(text=output.text or ""))
    blocks += [
        AnthropicToolUseContent(
            id=call.id,
            name=call.function.name,
            input=tool_input(call.function.arguments, call.function.name),
        )
        for call in output.tool_calls
    ]
    return blocks


def message_of(response: GenerateResponse) -> AnthropicMessage:
    usage = response.usage
    return AnthropicMessage(
        id=message_id(response.request_id),
        model=response.model,
        content=content_of(response.output),
        stop_reason=stop_reason(response.finish_reason, response.stop_sequence),
        stop_sequence=response.stop_sequence if response.finish_reason == "stop" else None,
        usage=AnthropicUsage(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        ),
    )
