"""What every router of the OpenAI surface shares: the route class that answers bad
input as OpenAI does (400 naming the field), the documented error statuses, and the
paths under which errors take OpenAI's shape.

The surface is served twice (app.py): under ``/openai/v1``, and its routes that do
not clash with native ones (chat/completions, completions, embeddings, images,
responses) also under ``/v1``, the base URL most OpenAI clients are given."""

from __future__ import annotations

from typing import Any

from pluggably.api.errors import ErrorFormat
from pluggably.surfaces.bad_input import BadInputRoute
from pluggably.surfaces.openai.shapes import OpenAIErrorResponse
from pluggably.surfaces.openai.translate import PARAM_NAMES, error_body

PREFIX = "/openai/v1"
ALIAS_PREFIX = "/v1"
# Everything under /openai/ (unknown routes included) answers errors in OpenAI's shape,
# and so do OpenAI's routes under /v1 (create_app hands these to the error handlers).
ALIASED = ("chat/", "completions", "embeddings", "images/", "responses")
ERROR_FORMATS: tuple[tuple[str, ErrorFormat], ...] = (
    ("/openai/", error_body),
    *((f"{ALIAS_PREFIX}/{path}", error_body) for path in ALIASED),
)

_ERROR_TEXT = {
    400: "Bad request (`invalid_parameter`, `invalid_json`, `feature_not_supported`, …)",
    401: "Missing or invalid credential (`unauthorized`)",
    403: "Credential lacks the scope (`forbidden`)",
    404: "Unknown model or route (`model_not_found`, `not_found`)",
    413: "Body too large (`payload_too_large`)",
    422: "Malformed path or query (`validation_error`)",
    429: "Rate limited (`rate_limited`); `Retry-After` set",
    500: "Unexpected error (`internal_error`)",
    502: "The provider answered with an error (`upstream_error`)",
    503: "Unavailable (`backend_unavailable`, `queue_full`, …); `Retry-After` set",
    504: "Timed out (`timeout`)",
}
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorResponse, "description": text}
    for status, text in _ERROR_TEXT.items()
}


class OpenAIRoute(BadInputRoute):
    """Invalid input answers 400 naming the field (``param``), as OpenAI's API does
    and its SDKs expect (``BadRequestError``); the native surface says 422."""

    names = PARAM_NAMES
