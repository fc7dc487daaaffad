"""The Responses API's request as this gateway reads it (API.md §8). Typed loosely,
like the chat request: item and tool types stay strings so that what is not served is
refused by name (a 400 naming the field) rather than as a schema error; unknown fields
are ignored (``include``, ``truncation``, ``user``, …)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from pluggably.surfaces.openai.shapes import Loose


class ResponsesContentPart(Loose):
    """``input_text``/``output_text`` (text), ``refusal``, ``input_image`` (a data:
    URL in ``image_url``); ``input_file`` is refused."""

    type: str
    text: str | None = Field(default=None, max_length=1_000_000)
    refusal: str | None = Field(default=None, max_length=1_000_000)
    image_url: str | None = Field(default=None, max_length=30_000_000)
    file_id: str | None = None
    detail: str | None = None


class ResponsesInputItem(Loose):
    """A message (``type`` ``message`` or absent, with ``role`` and ``content``), a
    ``function_call`` the model made, a ``function_call_output`` (the call's result),
    or a ``reasoning`` item sent back."""

    type: str | None = None
    id: str | None = Field(default=None, max_length=200)
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[ResponsesContentPart] | None = None
    call_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    arguments: str | None = Field(default=None, max_length=1_000_000)
    output: str | list[ResponsesContentPart] | None = None
    summary: list[ResponsesContentPart] | None = None


class ResponsesTool(Loose):
    """A function tool, flat (``name`` beside ``type``, unlike chat's)."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesNamedTool(Loose):
    type: str
    name: str | None = None


class ResponsesTextFormat(Loose):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponsesText(Loose):
    format: ResponsesTextFormat | None = None
    verbosity: str | None = None


class ResponsesReasoning(Loose):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(Loose):
    model: str | None = Field(default=None, max_length=300, examples=["openai:gpt-4o-mini"])
    input: (
        Annotated[str, Field(max_length=1_000_000)]
        | Annotated[list[ResponsesInputItem], Field(max_length=2000)]
    ) = ""
    instructions: str | None = Field(default=None, max_length=100_000)
    previous_response_id: str | None = Field(default=None, max_length=200)
    store: bool | None = True
    stream: bool | None = False
    tools: list[ResponsesTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | ResponsesNamedTool | None = None
    parallel_tool_calls: bool | None = None
    text: ResponsesText | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: ResponsesReasoning | None = None
    # OpenAI's bounds: 16 pairs, keys of 64 characters, values of 512.
    metadata: (
        Annotated[
            dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
            Field(max_length=16),
        ]
        | None
    ) = None
    # Asked for, never served: refused by name.
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    top_logprobs: int | None = None


class ResponsesDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: Literal[True] = True
