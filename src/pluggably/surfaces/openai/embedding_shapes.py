"""OpenAI's ``POST /embeddings`` on the wire: the request (``EmbeddingCreateParams``)
and ``CreateEmbeddingResponse``, as the official SDKs send and parse them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pluggably.surfaces.openai.shapes import Loose

# OpenAI's own limit on an input array.
MAX_INPUTS = 2048
TokenIds = list[int]


class OpenAIEmbeddingRequest(Loose):
    model: str = Field(
        min_length=1,
        max_length=300,
        examples=["bundled/all-minilm-l6-v2", "openai:text-embedding-3-small"],
    )
    input: str | list[str] | TokenIds | list[TokenIds] = Field(
        description="A text or a list of texts. Token-id arrays are refused: send the text."
    )
    encoding_format: Literal["float", "base64"] | None = Field(
        default=None,
        description="float (the default) or base64: the vector's little-endian float32 "
        "bytes, base64-encoded (what the openai SDKs ask for and decode by default).",
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Keep this many leading dimensions (renormalized)."
    )
    user: str | None = None


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class OpenAIEmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIEmbeddingUsage
