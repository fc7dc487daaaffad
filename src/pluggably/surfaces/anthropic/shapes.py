"""Anthropic's Messages API shapes (API.md §8): the request bodies of ``messages`` and
``messages/count_tokens``, the answer, the token count and the error envelope. Content
blocks are in ``blocks``; the translations to and from the native generation in
``request``, ``answer`` and ``stream``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from pluggably.surfaces.anthropic.blocks import (
    MESSAGE_BLOCKS,
    RESULT_BLOCKS,
    ROLE_OF_BLOCK,
    AnthropicContentBlock,
    AnthropicTextBlock,
    InputBlock,
    Lenient,
    OutputBlock,
)

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class AnthropicInputMessage(Lenient):
    role: Literal["user", "assistant"]
    content: str | list[AnthropicContentBlock]

    @model_validator(mode="before")
    @classmethod
    def _known_blocks(cls, data: Any) -> Any:
        """A block of a kind this gateway does not read (document, search_result,
        server tool blocks, …) is named in one clear error, not in a union's."""
        content = data.get("content") if isinstance(data, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            _known(block.get("type"), MESSAGE_BLOCKS)
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for part in block["content"]:
                    _known(part.get("type") if isinstance(part, dict) else None, RESULT_BLOCKS)
        return data

    @model_validator(mode="after")
    def _blocks_of_the_role(self) -> AnthropicInputMessage:
        for block in self.blocks:
            role = ROLE_OF_BLOCK.get(block.type, self.role)
            if role != self.role:
                raise ValueError(f"{block.type} blocks are only accepted in {role} messages")
        return self

    @property
    def blocks(self) -> list[InputBlock]:
        if isinstance(self.content, str):
            return [AnthropicTextBlock(type="text", text=self.content)]
        return list(self.content)


def _known(kind: Any, allowed: frozenset[str]) -> None:
    if isinstance(kind, str) and kind not in allowed:
        raise ValueError(
            f"{kind} blocks are not supported here; send {', '.join(sorted(allowed))} blocks"
        )


class AnthropicTool(Lenient):
    """A client tool (``type`` absent or ``custom``). Anthropic's server tools
    (``web_search_20250305``, ``bash_20250124``, …) have another ``type`` and no
    ``input_schema``: they are refused by name, since no upstream here runs them."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class _ParallelChoice(Lenient):
    disable_parallel_tool_use: bool = False


class ToolChoiceAuto(_ParallelChoice):
    type: Literal["auto"]


class ToolChoiceAny(_ParallelChoice):
    type: Literal["any"]


class ToolChoiceTool(_ParallelChoice):
    type: Literal["tool"]
    name: str = Field(min_length=1, max_length=64)


class ToolChoiceNone(Lenient):
    type: Literal["none"]


AnthropicToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
    Field(discriminator="type"),
]


class ThinkingEnabled(Lenient):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1)


class ThinkingAdaptive(Lenient):
    type: Literal["adaptive"]


class ThinkingDisabled(Lenient):
    type: Literal["disabled"]


AnthropicThinking = Annotated[
    ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled, Field(discriminator="type")
]


class JsonOutputFormat(Lenient):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(Lenient):
    format: JsonOutputFormat | None = None
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None


class AnthropicConversation(Lenient):
    """What ``messages`` and ``messages/count_tokens`` share: the model, the
    conversation and what it is asked beyond it (tools, thinking, output format)."""

    model: str = Field(min_length=1, max_length=300, examples=["local/gemma"])
    messages: list[AnthropicInputMessage] = Field(min_length=1, max_length=2000)
    system: str | list[AnthropicTextBlock] | None = None
    tools: list[AnthropicTool] | None = Field(default=None, max_length=128)
    tool_choice: AnthropicToolChoice | None = None
    thinking: AnthropicThinking | None = None
    output_config: OutputConfig | None = None


class AnthropicCountTokensRequest(AnthropicConversation):
    """``POST /anthropic/v1/messages/count_tokens``: a message's body without
    ``max_tokens``."""


class AnthropicMessagesRequest(AnthropicConversation):
    """``POST /anthropic/v1/messages``: the fields of Anthropic's Messages API that this
    gateway serves. ``top_k`` and ``metadata`` are accepted and ignored."""

    max_tokens: int = Field(ge=1, examples=[256])
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = None


class AnthropicUsage(BaseModel):
    input_tokens: int
    output_tokens: int


class AnthropicMessage(BaseModel):
    """The non-streamed answer, as Anthropic's API returns it: thinking, text and
    tool_use blocks, in that order."""

    id: str = Field(examples=["msg_5f2c…"])
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[OutputBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: AnthropicUsage


class AnthropicTokenCount(BaseModel):
    """The prompt's size: messages, system prompt and tools."""

    input_tokens: int


class AnthropicErrorDetail(BaseModel):
    type: str = Field(examples=["not_found_error"])
    message: str


class AnthropicError(BaseModel):
    """Every error under /anthropic, in Anthropic's envelope."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail
    request_id: str | None = None
