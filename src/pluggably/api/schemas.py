"""Response schemas shared by every router: the error envelope of API.md §2."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(examples=["model_not_found"])
    message: str
    details: Any = None
    request_id: str | None = None
    retry_after: int | None = None


class ErrorEnvelope(BaseModel):
    detail: ErrorBody


_DESCRIPTIONS = {
    400: "Bad request (`invalid_json`, `invalid_parameter`, …)",
    401: "Missing or invalid credential (`unauthorized`)",
    403: "Credential lacks the role or scope (`forbidden`)",
    404: "Not found",
    409: "Conflict",
    413: "Body too large (`payload_too_large`)",
    422: "Validation failed (`validation_error`); `details` lists `{loc, msg, type}`",
    429: "Rate limited (`rate_limited`); `Retry-After` set",
    500: "Unexpected error (`internal_error`)",
    503: (
        "Unavailable (`not_ready`, `backend_unavailable`, `database_unavailable`, …); "
        "`Retry-After` set"
    ),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error envelope for ``statuses``."""
    return {
        status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS.get(status, "Error")}
        for status in statuses
    }


# Every route can answer these.
COMMON_ERRORS = error_responses(400, 413, 422, 500)
# Every authenticated route can also answer these.
AUTH_ERRORS = error_responses(401, 403)
