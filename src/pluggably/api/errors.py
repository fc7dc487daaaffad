"""Rendering every failure in the single envelope of API.md §2."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pluggably.db.engine import DATABASE_DOWN
from pluggably.errors import DatabaseUnavailable, GatewayError
from pluggably.observability.context import current
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.api")

# Statuses Starlette raises by itself (routing, body parsing) and their codes.
_HTTP_CODES = {
    400: "invalid_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
}
# The keys of an OpenAPI path item that are methods.
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


# Compatibility surfaces (API.md §8) answer errors in their own API's shape: a function
# of (status, code, message, details) -> body, for the requests under a path prefix.
ErrorFormat = Callable[[int, str, str, Any], dict[str, Any]]


@dataclass(frozen=True)
class ErrorFormats:
    """The surfaces' error formats by path prefix, handed to the app at construction;
    a path under none of them answers in the native envelope."""

    surfaces: tuple[tuple[str, ErrorFormat], ...] = ()

    def current(self) -> ErrorFormat | None:
        """The format of the request being answered (None: the native envelope)."""
        ctx = current()
        return next((r for p, r in self.surfaces if ctx and ctx.path.startswith(p)), None)


def envelope(
    code: str,
    message: str,
    *,
    details: Any = None,
    request_id: str | None = None,
    retry_after: int | None = None,
) -> dict[str, Any]:
    """The native error body of API.md §2."""
    return {
        "detail": {
            "code": code,
            "message": message,
            "details": details,
            "request_id": request_id,
            "retry_after": retry_after,
        }
    }


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    render: ErrorFormat | None = None,
    details: Any = None,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error in ``render``'s shape, else in the native envelope."""
    ctx = current()
    body = (
        render(status, code, message, details)
        if render is not None
        else envelope(
            code,
            message,
            details=details,
            request_id=ctx.request_id if ctx else None,
            retry_after=retry_after,
        )
    )
    out_headers = dict(headers or {})
    if retry_after is not None:
        out_headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=out_headers)


def render_gateway_error(exc: GatewayError, render: ErrorFormat | None = None) -> JSONResponse:
    return error_response(
        exc.status,
        exc.code,
        exc.message,
        render=render,
        details=exc.details,
        retry_after=exc.retry_after,
        headers=exc.headers,
    )


def _gateway_error(_request: Request, exc: Exception, render: ErrorFormat | None) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return render_gateway_error(exc, render)


def _validation_error(
    _request: Request, exc: Exception, render: ErrorFormat | None
) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(
            400, "invalid_json", "The request body is not valid JSON.", render=render
        )
    # Only loc/msg/type: 'input' may echo secrets such as passwords.
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]
    fields = ", ".join(".".join(str(p) for p in d["loc"]) for d in details[:5])
    return error_response(
        422,
        "validation_error",
        f"Invalid request: check {fields}.",
        render=render,
        details=details,
    )


def route_path(scope: Any) -> str | None:
    """The path template of the route a request matched, with the prefix of the router
    it came through: a route of a router included under a prefix (the OpenAI surface,
    under /openai/v1 and /v1) knows only its own path, and FastAPI keeps the full one in
    the scope's effective route context."""
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(effective, "path", None) or getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


def _allowed_methods(request: Request) -> str | None:
    """The methods of the resource a 405 answers for (RFC 9110 §15.5.6), as documented.
    Starlette lists only those of the first route whose path matched, and FastAPI makes
    one route per method: GET /v1/jobs/{job_id} alone would hide its DELETE."""
    path = route_path(request.scope)
    # The document writes a path parameter without its converter ({model_id:path}).
    template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path) if path else None
    documented = request.app.openapi()["paths"].get(template) if template else None
    if not documented:
        return None
    return ", ".join(sorted(m.upper() for m in documented if m in _HTTP_METHODS)) or None


def _http_error(request: Request, exc: Exception, render: ErrorFormat | None) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allow := _allowed_methods(request)) is not None:
        headers["Allow"] = allow
    code = _HTTP_CODES.get(exc.status_code, "internal_error")
    message = (
        {
            "not_found": "No such route.",
            "method_not_allowed": "This method is not allowed on this route.",
            "invalid_json": "The request body could not be parsed.",
            "payload_too_large": "The request body is larger than this server accepts.",
        }.get(code, str(exc.detail))
        if code != "validation_error"
        else str(exc.detail)
    )
    return error_response(exc.status_code, code, message, render=render, headers=headers)


# The database did not answer (DATABASE_DOWN): the request's unit of work was rolled
# back, and the client may send it again. A 503 of its own, not an internal error.
DATABASE_RETRY_AFTER_S = 2


def _database_error(_request: Request, exc: Exception, render: ErrorFormat | None) -> JSONResponse:
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    log.warning("database_unavailable", error_type=type(exc).__name__, reason=reason[:200])
    return render_gateway_error(DatabaseUnavailable(retry_after=DATABASE_RETRY_AFTER_S), render)


_Render = Callable[[Request, Exception, ErrorFormat | None], JSONResponse]


def install_error_handlers(app: FastAPI, formats: ErrorFormats) -> None:
    """``app``'s failures in the native envelope, or in the shape of the surface
    (``formats``) whose path the request was for."""

    def handler(render: _Render) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            return render(request, exc, formats.current())

        return handle

    app.add_exception_handler(GatewayError, handler(_gateway_error))
    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, handler(_database_error))
    app.add_exception_handler(RequestValidationError, handler(_validation_error))
    app.add_exception_handler(StarletteHTTPException, handler(_http_error))
