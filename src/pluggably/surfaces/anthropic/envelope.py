"""Gateway errors in Anthropic's envelope (``{"type": "error", "error": {type,
message}}``), and validation findings worded as Anthropic words them."""

from __future__ import annotations

from typing import Any

from pluggably.errors import status_of_code


def problems(errs: Any, *, skip: int = 1) -> str:
    """Validation errors as Anthropic words them: ``max_tokens: Field required``."""
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())[skip:]) or 'body'}: {e.get('msg', '')}"
        for e in list(errs)[:5]
    ]
    return "; ".join(parts) or "The request body is invalid."


_FIELD_OF_PARAMETER = {"stop": "stop_sequences"}


def parameter_problems(details: Any) -> str:
    """The native parameter check's findings, in the Anthropic request's field names."""
    found = [
        {**d, "loc": [_FIELD_OF_PARAMETER.get(str(p), str(p)) for p in d.get("loc", ())[2:]]}
        for d in details or []
        if isinstance(d, dict)
    ]
    return problems(found, skip=0)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def status_of(code: str) -> int:
    """The HTTP status of a gateway error code (stream error frames carry only the code)."""
    return status_of_code(code)


def error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body
