"""Anthropic's content blocks (API.md §8): those a request's messages carry (text,
image, tool_use, tool_result, thinking, redacted_thinking) and those an answer is made
of (thinking, text, tool_use)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ANTHROPIC = "anthropic"  # the mark on Anthropic's signatures (messages.signed)


class Lenient(BaseModel):
    # Fields this gateway does not act on (cache_control, citations, metadata, …) are
    # accepted and ignored, so newer SDKs keep working.
    # NaN and Infinity (which Python's JSON reader accepts) are not numbers to send on.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class AnthropicTextBlock(Lenient):
    type: Literal["text"]
    text: str


class AnthropicBase64Source(Lenient):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class AnthropicUrlSource(Lenient):
    type: Literal["url"]
    url: str


class AnthropicImageBlock(Lenient):
    type: Literal["image"]
    source: Annotated[AnthropicBase64Source | AnthropicUrlSource, Field(discriminator="type")]


class AnthropicToolUseBlock(Lenient):
    """A tool call of an earlier assistant turn, sent back with the history."""

    type: Literal["tool_use"]
    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=64)
    input: dict[str, Any]


ToolResultPart = Annotated[AnthropicTextBlock | AnthropicImageBlock, Field(discriminator="type")]


class AnthropicToolResultBlock(Lenient):
    """The result of a tool call, in a user turn. ``is_error`` is accepted; the native
    tool message has no such flag, so the result's text is what the model reads."""

    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1, max_length=200)
    content: str | list[ToolResultPart] = ""
    is_error: bool = False


class AnthropicThinkingBlock(Lenient):
    """An assistant turn's thinking, sent back with the signature it came with."""

    type: Literal["thinking"]
    thinking: str
    signature: str = ""


class AnthropicRedactedThinkingBlock(Lenient):
    """Encrypted thinking: accepted and dropped (the native conversation has no place
    for it; Anthropic continues without it)."""

    type: Literal["redacted_thinking"]
    data: str


AnthropicContentBlock = Annotated[
    AnthropicTextBlock
    | AnthropicImageBlock
    | AnthropicToolUseBlock
    | AnthropicToolResultBlock
    | AnthropicThinkingBlock
    | AnthropicRedactedThinkingBlock,
    Field(discriminator="type"),
]
InputBlock = (
    AnthropicTextBlock
    | AnthropicImageBlock
    | AnthropicToolUseBlock
    | AnthropicToolResultBlock
    | AnthropicThinkingBlock
    | AnthropicRedactedThinkingBlock
)

# The kinds of block read here: in a message, and inside a tool_result.
MESSAGE_BLOCKS = frozenset(
    {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
RESULT_BLOCKS = frozenset({"text", "image"})

# Which blocks each role may send (Anthropic's own rule: results come from the user,
# calls and thinking from the assistant).
ROLE_OF_BLOCK = {
    "image": "user",
    "tool_result": "user",
    "tool_use": "assistant",
    "thinking": "assistant",
    "redacted_thinking": "assistant",
}


# answer


class AnthropicTextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class AnthropicThinkingContent(BaseModel):
    """The model's reasoning. ``signature`` is Anthropic's (to send the block back);
    reasoning from another vendor has none, and the SDKs take the empty string."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class AnthropicToolUseContent(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


OutputBlock = Annotated[
    AnthropicThinkingContent | AnthropicTextContent | AnthropicToolUseContent,
    Field(discriminator="type"),
]


def outward(signature: str | None) -> str:
    """A reasoning signature as Anthropic's clients see it: Anthropic's own unmarked
    (the gateway marks each vendor's, messages.signed), another vendor's as it is."""
    return (signature or "").removeprefix(f"{ANTHROPIC}:")


def inward(signature: str | None) -> str | None:
    """A thinking block's signature from a client, marked again: an unmarked one is
    Anthropic's (vendors' signatures are base64, so a ':' means it is marked)."""
    if not signature:
        return None
    return signature if ":" in signature else f"{ANTHROPIC}:{signature}"
