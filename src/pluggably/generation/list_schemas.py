"""The shapes of ``GET /v1/requests`` (its filters, one summary, a page), apart from the
query that fills them (listing.py) so that the client can use them without the
database layer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from pluggably.generation.schemas import RequestState

EVERYONE = "*"


class RequestQuery(BaseModel):
    """The filters and page of ``GET /v1/requests`` (its query parameters)."""

    model_config = ConfigDict(frozen=True)

    status: RequestState | None = Field(None, description="Only requests in this state.")
    model: str | None = Field(
        None, min_length=1, max_length=300, description="Only requests answered by this model."
    )
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="Whose requests: yours by default; an administrator may name any "
        "user, or '*' for everyone.",
    )
    limit: int = Field(50, ge=1, le=200, description="Requests per page.")
    cursor: str | None = Field(
        None, max_length=500, description="``next_cursor`` of the previous page."
    )


class RequestSummary(BaseModel):
    """One request record, without its response (``GET /v1/requests/{id}`` has that)."""

    request_id: str
    status: RequestState
    model: str | None = Field(description="Null until a model was selected.")
    provider: str | None
    modality: str
    user_id: str
    token_id: str | None = Field(
        description="The API token it came with; null for a login, the admin key or "
        "local-only mode."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    latency_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    error_code: str | None


class RequestList(BaseModel):
    requests: list[RequestSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page."
    )
