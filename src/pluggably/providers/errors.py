"""Upstream failures mapped onto the codes of API.md §2, naming provider and model.

Retryable ones (rate limits, 5xx, timeouts, connection failures) let the fallback
loop move on to the next candidate; the others end the request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from pluggably.errors import (
    BackendUnavailable,
    GatewayError,
    InvalidParameter,
    ModelLoading,
    ModelNotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    Timeout,
    UpstreamError,
)
from pluggably.netguard import NotPublic

RETRYABLE: tuple[type[GatewayError], ...] = (
    RateLimited,
    BackendUnavailable,
    Timeout,
    QueueFull,
    ModelLoading,
)


def is_retryable(exc: GatewayError) -> bool:
    return isinstance(exc, RETRYABLE)


def _retry_after(headers: Mapping[str, str]) -> int | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(1, int(float(value)))
    except ValueError:
        return None


def upstream_message(body: bytes) -> str | None:
    """The vendor's own error message, if the body carries one (OpenAI, Anthropic and
    Google all nest it under ``error.message``)."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:300] if message else None


def from_status(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> GatewayError:
    who = f"{provider} ({model})"
    detail = upstream_message(body)
    said = f": {detail}" if detail else ""
    if status in {401, 403}:
        return UpstreamError(
            f"{who} refused your credential{said}. Check the key stored for {provider} "
            "(POST /v1/users/provider-keys)."
        )
    if status == 404:
        return ModelNotFound(f"{who} has no such model{said}.")
    if status == 429:
        retry = _retry_after(headers) or 1
        return RateLimited(f"{who} is rate limiting requests{said}.", retry_after=retry)
    if status in {400, 422}:
        return InvalidParameter(f"{who} rejected the request{said}.")
    if status == 402:  # retryable like a rate limit: a free model may answer instead
        return RateLimited(f"{who} says the account has no credit left{said}.", retry_after=3600)
    if status == 413:
        return PayloadTooLarge(f"{who} found the request too large{said}.")
    if status == 408 or status == 504:
        return Timeout(f"{who} timed out{said}.")
    if status >= 500:
        return BackendUnavailable(f"{who} is failing (HTTP {status}){said}.", retry_after=5)
    return UpstreamError(f"{who} answered HTTP {status}{said}.")


def from_transport(provider: str, model: str, exc: BaseException) -> GatewayError:
    """A failure below HTTP, said in words a user can act on (no exception names)."""
    who = f"{provider} ({model})"
    if isinstance(exc, TimeoutError):
        return Timeout(f"{who} did not answer in time.")
    return BackendUnavailable(f"{who} is unreachable ({_transport_reason(exc)}).", retry_after=5)


# First match wins: subclasses before their bases.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ClientConnectorDNSError, "its host name does not resolve"),
    (aiohttp.ClientSSLError, "the TLS handshake failed"),
    (aiohttp.ClientConnectorError, "the connection was refused"),
    (aiohttp.ServerDisconnectedError, "it closed the connection without an answer"),
    (aiohttp.ClientPayloadError, "the answer was cut off"),
    (aiohttp.ClientResponseError, "it sent something that is not HTTP"),
    (aiohttp.InvalidURL, "its URL is not valid"),
)


def _transport_reason(exc: BaseException) -> str:
    if isinstance(getattr(exc, "os_error", None), NotPublic):
        return "its host resolves to no public address"
    return next((why for kind, why in _REASONS if isinstance(exc, kind)), "the connection failed")


def malformed(provider: str, model: str, what: str) -> GatewayError:
    return BackendUnavailable(
        f"{provider} ({model}) sent a malformed answer: {what}.", retry_after=5
    )
