"""Bodies of the request routes (``api/generate.py``) and of regenerate
(``api/session_generate.py``); the generate request and response themselves are in
``generation/schemas.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from pluggably.generation.schemas import SelectionMode
from pluggably.request_body import Parameters, RequestBody

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
