"""Per-request context shared by the middleware, the auth dependency and the
error handler, carried in a contextvar so it needs no plumbing."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestContext:
    request_id: str
    principal_id: str | None = None
    path: str = ""
    # Headers every response of this request carries (the x-ratelimit-* of a limited
    # generation), added by the middleware when the response starts.
    headers: dict[str, str] | None = None


_current: ContextVar[RequestContext | None] = ContextVar("pluggably_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def set_current(ctx: RequestContext | None) -> object:
    return _current.set(ctx)


def reset_current(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
