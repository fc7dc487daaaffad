"""Errors of the client: one exception per failure class of the API's error envelope
(API.md §2), carrying its code, message, HTTP status, request id and Retry-After."""

from __future__ import annotations

from typing import Any

import httpx


class PluggablyError(Exception):
    """A failure answered by the server (or met on the way to it).

    ``status`` is the HTTP status (None for a failure inside a stream or on the
    connection); ``retry_after`` is in seconds, from the envelope or the header."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: int | None = None,
        request_id: str | None = None,
        retry_after: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.details = details

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status is not None else ""
        return f"{self.message} ({where}{self.code})"


class BadRequestError(PluggablyError):
    """400: ``invalid_json``, ``invalid_parameter``, ``model_required``, …"""


class SessionClosedError(BadRequestError):
    """400 ``session_closed``: the session takes no new turns."""


class AuthError(PluggablyError):
    """401 ``unauthorized``: the credential is missing or not valid."""


class ForbiddenError(PluggablyError):
    """403 ``forbidden``: the credential lacks the role or scope (or a signature is bad)."""


class NotFoundError(PluggablyError):
    """404: ``not_found``, ``model_not_found``, ``session_not_found``, …"""


class ConflictError(PluggablyError):
    """409 ``conflict``."""


class GoneError(PluggablyError):
    """410 ``artifact_expired``."""


class PayloadTooLargeError(PluggablyError):
    """413 ``payload_too_large``."""


class ValidationError(PluggablyError):
    """422 ``validation_error``; ``details`` lists ``{loc, msg, type}`` per field."""


class RateLimitedError(PluggablyError):
    """429 ``rate_limited``; ``retry_after`` says when to try again."""


class ServerError(PluggablyError):
    """500 ``internal_error`` (or any other 5xx without a more precise class)."""


class UpstreamError(ServerError):
    """502 ``upstream_error``: the provider answered an error."""


class UnavailableError(ServerError):
    """503: ``backend_unavailable``, ``database_unavailable``, ``model_loading``,
    ``not_ready``, …"""


class QueueFullError(UnavailableError):
    """503 ``queue_full``: the model's queue has no room."""


class GatewayTimeoutError(ServerError):
    """504 ``timeout``."""


class StorageFullError(ServerError):
    """507 ``storage_full``."""


class RequestFailedError(PluggablyError):
    """A queued or streamed request ended ``failed`` (its code says why)."""


class RequestCancelledError(PluggablyError):
    """A request ended ``cancelled`` before it had a result."""


class TransportError(PluggablyError):
    """The server could not be reached, or the connection broke."""


class ClientTimeoutError(TransportError):
    """The server did not answer within the client's timeout."""


class ProtocolError(PluggablyError):
    """The answer was not what a Pluggably server sends (not JSON, a broken stream)."""


_BY_CODE: dict[str, type[PluggablyError]] = {
    "session_closed": SessionClosedError,
    "queue_full": QueueFullError,
    "rate_limited": RateLimitedError,
    "unauthorized": AuthError,
    "forbidden": ForbiddenError,
    "validation_error": ValidationError,
    "upstream_error": UpstreamError,
    "timeout": GatewayTimeoutError,
    "storage_full": StorageFullError,
    "cancelled": RequestCancelledError,
}

_BY_STATUS: dict[int, type[PluggablyError]] = {
    400: BadRequestError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitedError,
    502: UpstreamError,
    503: UnavailableError,
    504: GatewayTimeoutError,
    507: StorageFullError,
}


def error_class(code: str, status: int | None) -> type[PluggablyError]:
    """The most precise class for an error ``code`` (and HTTP ``status`` when known)."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status is not None:
        if status in _BY_STATUS:
            return _BY_STATUS[status]
        if status >= 500:
            return ServerError
        if status >= 400:
            return BadRequestError if code.endswith("_parameter") else PluggablyError
    if code.endswith("_not_found"):
        return NotFoundError
    return PluggablyError


def _retry_after(response: httpx.Response, envelope: object) -> int | None:
    if isinstance(envelope, int):
        return envelope
    header = response.headers.get("retry-after")
    try:
        return int(float(header)) if header is not None else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> PluggablyError:
    """The exception for a non-2xx answer: from the envelope when there is one."""
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    try:
        detail = response.json()["detail"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        return error_class("", status)(
            text or f"HTTP {status} from {response.request.url.path}",
            code=f"http_{status}",
            status=status,
            request_id=request_id,
            retry_after=_retry_after(response, None),
        )
    return error_class(code, status)(
        message,
        code=code,
        status=status,
        request_id=detail.get("request_id") or request_id,
        retry_after=_retry_after(response, detail.get("retry_after")),
        details=detail.get("details"),
    )


def error_from_transport(exc: httpx.TransportError, base_url: str) -> PluggablyError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ClientTimeoutError(
            f"{base_url} did not answer in time ({text})", code="client_timeout"
        )
    return TransportError(f"cannot reach {base_url}: {text}", code="connection_error")
