"""POST /v1/generate: the request and response of API.md §3, and the bodies of the
request routes (status, result, cancel) and of a session's regenerate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pluggably.request_body import AnyJson, Parameters, RequestBody

Modality = Literal["text", "image", "3d"]
SelectionMode = Literal["auto", "free_only", "commercial_only", "model"]
MAX_IMAGES = 16


class ChatMessage(RequestBody):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class GenerateInput(RequestBody):
    prompt: str | None = Field(default=None, max_length=1_000_000)
    messages: list[ChatMessage] | None = Field(default=None, max_length=2000)
    images: list[str] | None = Field(
        default=None, max_length=MAX_IMAGES, description="base64 or data: URLs"
    )
    mesh: str | None = Field(default=None, description="base64 mesh")

    @model_validator(mode="after")
    def _one_form(self) -> GenerateInput:
        if self.prompt is not None and self.messages is not None:
            raise ValueError("give input.prompt or input.messages, not both")
        return self


class GenerateRequest(RequestBody):
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


class Artifact(BaseModel):
    id: str
    type: Literal["image", "mesh", "preview"]
    url: str
    content_type: str
    size_bytes: int
    expires_at: datetime


class Output(BaseModel):
    text: str | None = None
    images: list[str] = Field(default_factory=list)
    mesh: str | None = None
    artifacts: list[Artifact] = Field(default_factory=list)


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Attempt(BaseModel):
    model: str
    provider: str
    error_code: str | None


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
    finish_reason: Literal["stop", "length", "cancelled", "error"]
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


class RegenerateRequest(RequestBody):
    """``null`` for a field means the field is not set, as in the generate request."""

    model: str | None = Field(default=None, max_length=300)
    parameters: Parameters = Field(default_factory=dict)
    selection_mode: SelectionMode = "auto"
    mode: Literal["replace", "append"] = "replace"
    stream: bool = False
    wait: bool = False
