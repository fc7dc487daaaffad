"""POST /v1/generate: the request and response of API.md §3, and the bodies of the
request routes (status, result, cancel) and of a session's regenerate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pluggably.request_body import AnyJson, Parameters, RequestBody
from pluggably.tool_call_schema import ToolCallSpec

Modality = Literal["text", "image", "3d", "embedding"]
SelectionMode = Literal["auto", "free_only", "commercial_only", "model"]
MAX_IMAGES = 16
# Texts one embedding request may carry (OpenAI's own limit on an input array).
MAX_TEXTS = 2048
EmbedText = Annotated[str, Field(min_length=1, max_length=1_000_000)]


TOOL_NAME = r"^[a-zA-Z0-9_.-]{1,64}$"
MAX_TOOLS = 128


class ChatMessage(RequestBody):
    """A turn of ``input.messages``. An assistant turn may carry ``tool_calls`` (its
    ``content`` then may be empty or null); a ``tool`` turn is a tool's result and names
    the call it answers in ``tool_call_id``. ``reasoning`` (with its vendor's
    ``reasoning_signature``) is an assistant turn's visible reasoning, sent back."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = Field(default="", max_length=1_000_000)
    tool_calls: list[ToolCallSpec] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=200)
    reasoning: str | None = Field(default=None, max_length=1_000_000)
    reasoning_signature: str | None = Field(default=None, max_length=100_000)

    @model_validator(mode="after")
    def _tool_fields(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message names the call it answers in tool_call_id")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("only tool messages carry tool_call_id")
        return self


class FunctionSpec(RequestBody):
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = Field(default=None, max_length=100_000)
    parameters: dict[str, AnyJson] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="the arguments' JSON Schema",
    )
    strict: bool | None = None


class ToolSpec(RequestBody):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(RequestBody):
    name: str = Field(pattern=TOOL_NAME)


class NamedToolChoice(RequestBody):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(RequestBody):
    name: str = Field(default="response", pattern=TOOL_NAME)
    schema_: dict[str, AnyJson] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = Field(default=None, max_length=100_000)


class ResponseFormatSpec(RequestBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormatSpec:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs json_schema: {name, schema}")
        return self


class ReasoningOptions(RequestBody):
    effort: Literal["low", "medium", "high"] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)


class GenerateInput(RequestBody):
    prompt: str | None = Field(default=None, max_length=1_000_000)
    messages: list[ChatMessage] | None = Field(default=None, max_length=2000)
    images: list[str] | None = Field(
        default=None, max_length=MAX_IMAGES, description="base64 or data: URLs"
    )
    mesh: str | None = Field(default=None, description="base64 mesh")
    texts: list[EmbedText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXTS,
        description="modality embedding: the texts to embed, each non-empty "
        "(or input.prompt for one text)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> GenerateInput:
        given = [n for n in ("prompt", "messages", "texts") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of input.{given[0]} and input.{given[1]}, not both")
        return self


class OutputOptions(RequestBody):
    """What a generation may do beyond text: call tools, answer in JSON, reason."""

    tools: list[ToolSpec] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatSpec | None = None
    reasoning: ReasoningOptions | None = None

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> OutputOptions:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tools: each function needs its own name")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice names '{choice.function.name}', which is not in tools")
        if choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs tools")
        return self


class GenerateRequest(OutputOptions):
    """``null`` for an optional field means the field is not set (its default), and a
    ``null`` parameter value is a parameter not given: existing clients send both."""

    model: str | None = Field(default=None, max_length=300)
    provider: str | None = Field(default=None, max_length=64)
    modality: Modality | None = None
    input: GenerateInput
    parameters: Parameters = Field(default_factory=dict)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    session_id: str | None = Field(default=None, max_length=64)
    state_tokens: dict[str, AnyJson] | None = None
    selection_mode: SelectionMode = "auto"
    while_loading: Literal["wait", "fallback"] = "wait"
    wait: bool = False
    stream: bool = False

    @field_validator("model")
    @classmethod
    def _auto(cls, value: str | None) -> str | None:
        return None if value in {None, "", "auto"} else value

    @model_validator(mode="after")
    def _embedding_input(self) -> GenerateRequest:
        texts = self.input.texts is not None
        if texts and self.modality not in (None, "embedding"):
            raise ValueError(f"input.texts is for modality 'embedding', not '{self.modality}'")
        if self.modality == "embedding" or texts:
            if not texts and not self.input.prompt:
                raise ValueError("modality 'embedding' needs input.texts (or input.prompt)")
            if self.session_id is not None:
                raise ValueError(
                    "embeddings are not conversation turns: send them without session_id"
                )
        return self


class Artifact(BaseModel):
    id: str
    type: Literal["image", "mesh", "preview"]
    url: str
    content_type: str
    size_bytes: int
    expires_at: datetime


class Output(BaseModel):
    text: str | None = None
    tool_calls: list[ToolCallSpec] = Field(default_factory=list)
    reasoning: str | None = Field(
        default=None, description="the model's visible reasoning, when it returned one"
    )
    reasoning_signature: str | None = Field(
        default=None,
        description="its vendor's signature of the reasoning (Anthropic): send it back "
        "with the reasoning on the assistant message to continue the conversation",
    )
    images: list[str] = Field(default_factory=list)
    mesh: str | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    embeddings: list[list[float]] | None = Field(
        default=None,
        description="modality embedding: one vector per input text, in order (always "
        "inline, never an artifact)",
    )


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float | None = Field(
        default=None,
        description="What the call cost at the gateway's prices (0 for an unpriced local "
        "model); null when unknown.",
    )


class Attempt(BaseModel):
    model: str
    provider: str
    error_code: str | None
    reason: str | None = Field(
        default=None, description="why the candidate was skipped without being called"
    )


class Selection(BaseModel):
    selected_model: str
    selected_provider: str
    fallback_used: bool
    fallback_reason: str | None
    attempts: list[Attempt]


class CreditsStatus(BaseModel):
    provider: str
    status: Literal["available", "exhausted", "rate_limited", "unknown"]
    remaining: float | None = None
    reset_at: datetime | None = None


class Timings(BaseModel):
    queue_ms: float = 0
    load_ms: float = 0
    first_token_ms: float | None = None
    total_ms: float


class GenerateResponse(BaseModel):
    request_id: str
    model: str
    provider: str
    modality: Modality
    session_id: str | None = None
    state_tokens: dict[str, Any] | None = None
    output: Output
    usage: UsageInfo | None
    finish_reason: Literal["stop", "length", "tool_calls", "cancelled", "error"]
    stop_sequence: str | None = Field(
        default=None,
        description="Which of the request's stop sequences ended the text (finish_reason "
        "'stop'), where that is known: local models, Anthropic, and the sequences this "
        "gateway applies itself; null otherwise.",
    )
    selection: Selection
    credits_status: CreditsStatus | None = None
    timings: Timings
    warnings: list[str] = Field(default_factory=list)


class Accepted(BaseModel):
    """202: the request waits in a local model's queue and runs server-side."""

    request_id: str
    status: Literal["queued"] = "queued"
    queue_position: int
    estimated_wait_ms: int | None
    status_url: str = ""
    result_url: str = ""

    def model_post_init(self, _context: Any) -> None:
        self.status_url = self.status_url or f"/v1/requests/{self.request_id}/status"
        self.result_url = self.result_url or f"/v1/requests/{self.request_id}"


RequestState = Literal["queued", "running", "completed", "failed", "cancelled"]


class RequestStatus(BaseModel):
    request_id: str
    status: RequestState
    queue_position: int | None
    model: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: dict[str, str] | None


class RequestDetails(RequestStatus):
    result: dict[str, Any] | None


class CancelResult(BaseModel):
    request_id: str
    cancelled: bool
    status: RequestState
    partial_output: dict[str, Any] | None


class RegenerateRequest(OutputOptions):
    """``null`` for a field means the field is not set, as in the generate request."""

    model: str | None = Field(default=None, max_length=300)
    parameters: Parameters = Field(default_factory=dict)
    selection_mode: SelectionMode = "auto"
    mode: Literal["replace", "append"] = "replace"
    stream: bool = False
    wait: bool = False
