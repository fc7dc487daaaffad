"""Ollama's API shapes (API.md §8), as the official ``ollama`` client sends and reads
them: the request bodies of chat, generate, embed, embeddings, show, delete and pull,
and the answers. Unknown fields are ignored, as Ollama ignores them; the ``options``
Ollama does not know either (options.py picks the ones mapped here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, model_validator

from pluggably.request_body import AnyJson

# Seconds or a duration; strict: JSON true is not one second (Ollama refuses it too).
KeepAliveValue = StrictFloat | str | None
ModelName = Annotated[
    str, Field(min_length=1, max_length=300, description="A registry id or provider:model.")
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class OllamaFunctionCall(_Lenient):
    name: str = Field(min_length=1, max_length=200)
    arguments: dict[str, AnyJson] = Field(default_factory=dict)


class OllamaToolCall(_Lenient):
    function: OllamaFunctionCall


class OllamaMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = Field(default="", max_length=1_000_000)
    images: list[str] | None = Field(default=None, max_length=32, description="base64")
    thinking: str | None = None
    tool_calls: list[OllamaToolCall] | None = Field(default=None, max_length=128)
    tool_name: str | None = Field(default=None, max_length=200)
    tool_call_id: str | None = Field(default=None, max_length=200)


class _Generating(_Lenient):
    model: ModelName
    format: Literal["", "json"] | dict[str, AnyJson] | None = Field(
        default=None, description="'json', or a JSON Schema the answer must match."
    )
    options: dict[str, Any] | None = None
    stream: bool = Field(default=True, description="NDJSON lines (Ollama's default).")
    keep_alive: KeepAliveValue = Field(
        default=None,
        description="Seconds, or a duration ('5m', '1h'); 0 unloads the model after the "
        "answer, a negative value keeps it loaded.",
    )
    think: bool | Literal["low", "medium", "high"] | None = None


class OllamaChatRequest(_Generating):
    messages: list[OllamaMessage] = Field(default_factory=list, max_length=2000)
    tools: list[dict[str, AnyJson]] | None = Field(default=None, max_length=128)


class OllamaGenerateRequest(_Generating):
    prompt: str | None = Field(default=None, max_length=1_000_000)
    suffix: str | None = None
    system: str | None = Field(default=None, max_length=100_000)
    template: str | None = Field(default=None, description="Ignored: the model's own is used.")
    context: list[int] | None = Field(default=None, description="Ignored.")
    raw: bool | None = Field(default=None, description="Ignored.")
    images: list[str] | None = Field(default=None, max_length=32, description="base64")


class OllamaEmbedRequest(_Lenient):
    model: ModelName
    input: str | list[str] = Field(description="One text or several.")
    truncate: bool | None = Field(default=None, description="Ignored: inputs are truncated.")
    dimensions: int | None = Field(default=None, ge=1)
    options: dict[str, Any] | None = None
    keep_alive: KeepAliveValue = None


class OllamaEmbeddingsRequest(_Lenient):
    model: ModelName
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAliveValue = None


class OllamaModelRequest(_Lenient):
    """show and delete: the model by name (older clients send ``name``)."""

    model: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _named(self) -> OllamaModelRequest:
        if not (self.model or self.name):
            raise ValueError("model is required")
        return self

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class OllamaPullRequest(OllamaModelRequest):
    insecure: bool | None = Field(default=None, description="Ignored.")
    stream: bool = True


# answers
class OllamaError(BaseModel):
    error: str


class OllamaDetails(BaseModel):
    parent_model: str = ""
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str


class OllamaListed(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: OllamaDetails


class OllamaTags(BaseModel):
    models: list[OllamaListed]


class OllamaShow(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: OllamaDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class OllamaRunning(BaseModel):
    name: str
    model: str
    size: int
    digest: str
    details: OllamaDetails
    expires_at: str
    size_vram: int
    context_length: int | None


class OllamaPs(BaseModel):
    models: list[OllamaRunning]


class OllamaVersion(BaseModel):
    version: str


class OllamaProgress(BaseModel):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class OllamaAnswerMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    thinking: str | None = None
    tool_calls: list[OllamaToolCall] | None = None


class _Timed(BaseModel):
    model: str
    created_at: str
    done: bool
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class OllamaChatAnswer(_Timed):
    message: OllamaAnswerMessage


class OllamaGenerateAnswer(_Timed):
    response: str
    thinking: str | None = None


class OllamaEmbedAnswer(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class OllamaEmbeddingsAnswer(BaseModel):
    embedding: list[float]
