"""A tool call in OpenAI's JSON shape, as the native API carries it: in generate
responses, on the assistant turns of a request's history, and on session messages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FunctionCall(BaseModel):
    # Any name a model wrote (it may break the pattern tools are declared with): an
    # answer is never lost to it, and a client can send the turn back as it came.
    name: str = Field(min_length=1, max_length=200)
    arguments: str = Field(max_length=1_000_000, description="the arguments' JSON text")


class ToolCallSpec(BaseModel):
    """A tool call, in OpenAI's shape: in responses, and on assistant messages of a
    request's history."""

    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall
