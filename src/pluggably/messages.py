"""The neutral conversation types that generation, providers, runtimes and surfaces
all speak: messages (with tool calls, tool results and reasoning), and what a request
asks of the model beyond the conversation (``Features``: tools, tool choice, output
format, reasoning)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ImageInput:
    mime: str
    data_b64: str

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.data_b64}"


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the JSON text of its
    arguments, as the model wrote it."""

    id: str
    name: str
    arguments: str

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's shape, which the native API, sessions and chat templates share."""
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


def arguments_object(arguments: str) -> dict[str, Any] | None:
    """A call's arguments as the JSON object they should be (empty text: ``{}``); None
    when they are not one (a model may write anything)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant | tool
    text: str
    images: tuple[ImageInput, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: the call it answers
    # An assistant turn's visible reasoning, and the signature its vendor gave it
    # (Anthropic's thinking blocks must come back signed to be continued).
    reasoning: str | None = None
    reasoning_signature: str | None = None


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``parameters`` is its arguments' JSON Schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's tool shape, which its vendors and chat templates take."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ToolChoice:
    """``auto`` (the model decides), ``none``, ``required`` (some call), or
    ``function`` (a call to ``name``)."""

    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "function")


@dataclass(frozen=True)
class ResponseFormat:
    """``json_object``: any JSON object; ``json_schema``: JSON matching ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(frozen=True)
class ReasoningSpec:
    effort: Literal["low", "medium", "high"] | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Features:
    """What a call asks beyond the conversation and the sampling parameters."""

    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning: ReasoningSpec | None = None

    @property
    def uses_tools(self) -> bool:
        """Tools the model may call (``tool_choice: none`` offers none)."""
        return bool(self.tools) and self.tool_choice.mode != "none"

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The schema the answer's text must match, if any."""
        fmt = self.response_format
        return fmt.schema if fmt is not None and fmt.type == "json_schema" else None

    @property
    def json_output(self) -> bool:
        """The answer's text must be JSON (an object, or per the schema)."""
        fmt = self.response_format
        return fmt is not None and fmt.type in ("json_object", "json_schema")


NO_FEATURES = Features()


def signed(vendor: str, signature: str | None) -> str | None:
    """A reasoning signature as the gateway hands it out: marked with the vendor that
    made it (``anthropic:…``), since a signature is only valid for its own vendor and a
    conversation may move to another one."""
    return None if signature is None else f"{vendor}:{signature}"


def signature_for(vendor: str, signature: str | None) -> str | None:
    """The vendor's own signature out of a marked one; None when another vendor (or
    nobody) made it: that signature is not sent."""
    prefix = f"{vendor}:"
    if signature is None or not signature.startswith(prefix):
        return None
    return signature[len(prefix) :]
