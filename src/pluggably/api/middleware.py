"""The outermost layer of every HTTP request: request id, hardening headers,
body-size and NUL limits, access log, metrics, and the last-resort 500 in the
standard envelope."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pluggably.api.errors import ErrorFormats, error_response, route_path
from pluggably.api.nul_scan import NulScanner
from pluggably.observability.context import RequestContext, reset_current, set_current
from pluggably.observability.metrics import Metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"

log = structlog.get_logger("pluggably.http")


def _request_id(headers: Headers) -> str:
    supplied = headers.get("x-request-id", "")
    return supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex


# On every response. Answers carry secrets (login and API tokens, invites) and nothing
# the API serves is meant for a shared cache: no-store unless a route chose its own
# caching (artifact downloads, SSE). No CSP: /docs loads Swagger UI from a CDN.
_HARDENING = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_NO_STORE = (b"cache-control", b"no-store")


def _harden(message: Message, request_id: bytes, extra: dict[str, str] | None) -> None:
    headers = list(message.get("headers", ()))
    present = {name.lower() for name, _ in headers}
    if extra:  # the request's own (a limited generation's x-ratelimit-*)
        headers += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present]
    if b"cache-control" not in present:
        headers.append(_NO_STORE)
    headers += [header for header in _HARDENING if header[0] not in present]
    headers.append((b"x-request-id", request_id))
    message["headers"] = headers


NUL_MESSAGE = "NUL characters are not accepted in paths, queries or bodies."


def _has_nul(scope: Scope) -> bool:
    # PostgreSQL cannot store U+0000 in text: refuse it at the door, not with a 500.
    raw = scope.get("raw_path") or scope["path"].encode()
    return b"%00" in raw or b"\x00" in raw or b"%00" in scope.get("query_string", b"")


def _route_template(scope: Scope) -> str:
    path = route_path(scope)
    if path is not None:
        return path
    # Plain Starlette routes (/openapi.json, /docs) set no "route" but do set an
    # endpoint; they have no parameters, so the path is their template.
    return str(scope["path"]) if "endpoint" in scope else UNMATCHED_ROUTE


class RequestMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, errors: ErrorFormats
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        ctx = RequestContext(request_id=_request_id(headers), path=scope["path"])
        request_id = ctx.request_id.encode("ascii")
        token = set_current(ctx)
        structlog.contextvars.bind_contextvars(request_id=ctx.request_id)
        state: dict[str, Any] = {"status": 500, "started": False}
        start = time.perf_counter()
        self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
                _harden(message, request_id, ctx.headers)
            await send(message)

        try:
            if _has_nul(scope):
                await error_response(
                    422, "validation_error", NUL_MESSAGE, render=self.errors.current()
                )(scope, receive, send_with_id)
            elif self._declared_too_large(headers):
                await error_response(
                    413,
                    "payload_too_large",
                    self._too_large_message(),
                    render=self.errors.current(),
                )(scope, receive, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], route=_route_template(scope))
            if not state["started"]:
                response = error_response(
                    500,
                    "internal_error",
                    "Internal server error; the request id is in the logs.",
                    render=self.errors.current(),
                )
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            self.metrics.in_flight.dec()
            self.metrics.observe(scope["method"], route, state["status"], elapsed)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=state["status"],
                latency_ms=round(elapsed * 1000, 2),
                principal_id=ctx.principal_id,
            )
            structlog.contextvars.unbind_contextvars("request_id")
            reset_current(token)

    def _too_large_message(self) -> str:
        return (
            f"The request body is larger than the {self.max_body_bytes} bytes this server accepts."
        )

    def _declared_too_large(self, headers: Headers) -> bool:
        length = headers.get("content-length")
        return bool(length and length.isdigit() and int(length) > self.max_body_bytes)

    def _limited(self, receive: Receive) -> Receive:
        """Enforce the body limit on bodies without (or lying about) Content-Length."""
        received = 0
        nul = NulScanner()

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_body_bytes:
                    raise HTTPException(413, self._too_large_message())
                if nul.found(body):
                    raise HTTPException(422, NUL_MESSAGE)
            return message

        return limited
