"""Upstream failures mapped onto the codes of API.md §2, naming provider and model.

Retryable ones (rate limits, 5xx, timeouts, connection failures) let the fallback
loop move on to the next candidate; the others end the request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
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


QUOTE_LIMIT = 300  # characters of an upstream's own message quoted to users
SECRET_RUN = 8  # this many characters of a secret in a row are redacted wherever they appear
MIN_SECRET = 6  # a shorter "secret" (a placeholder) would redact ordinary words
_WHOLE_WORDS = re.compile(r"(.*\S)\s", re.DOTALL)  # up to the last word that ends in it


def quoted(message: str, limit: int = QUOTE_LIMIT) -> str:
    """An upstream's message shortened for quoting, cut between words only.

    Vendors echo the key they refused, and the key is redacted later, where the
    credential is known (``generation.plan.scrubbed``). A cut inside the key would
    leave a fragment too short to recognise as the key; so the word the limit falls
    in is dropped whole (a message without a space before the limit quotes nothing)."""
    if len(message) <= limit:
        return message
    words = _WHOLE_WORDS.match(message[: limit + 1])
    return f"{words.group(1)} …" if words else ""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every run of ``SECRET_RUN`` or more characters of a secret in it
    replaced: a key echoed whole, cut short, or with characters masked or missing.
    Secrets shorter than a run are replaced where they appear whole."""
    hidden = bytearray(len(text))  # 1 for each character that belongs to a secret
    for secret in secrets:
        for start, size in _matches(text, secret):
            hidden[start : start + size] = b"\x01" * size
    if not any(hidden):
        return text
    parts: list[str] = []
    for i, char in enumerate(text):
        if not hidden[i]:
            parts.append(char)
        elif i == 0 or not hidden[i - 1]:
            parts.append("[redacted]")
    return "".join(parts)


def _matches(text: str, secret: str) -> Iterator[tuple[int, int]]:
    if len(secret) < SECRET_RUN:
        if len(secret) >= MIN_SECRET:
            start = text.find(secret)
            while start >= 0:
                yield start, len(secret)
                start = text.find(secret, start + 1)
        return
    runs = {secret[i : i + SECRET_RUN] for i in range(len(secret) - SECRET_RUN + 1)}
    for i in range(len(text) - SECRET_RUN + 1):
        if text[i : i + SECRET_RUN] in runs:
            yield i, SECRET_RUN


def upstream_message(body: bytes) -> str | None:
    """The vendor's own error message, if the body carries one (OpenAI, Anthropic and
    Google all nest it under ``error.message``), shortened for quoting."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return (quoted(str(message)) or None) if message else None


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


# One reason for a name that does not resolve and one that resolves inside: users must
# not learn which inside names exist.
NO_PUBLIC_ADDRESS = "its host does not resolve to a public address"
# First match wins: subclasses before their bases.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ClientConnectorDNSError, NO_PUBLIC_ADDRESS),
    (aiohttp.ClientSSLError, "the TLS handshake failed"),
    (aiohttp.ClientConnectorError, "the connection was refused"),
    (aiohttp.ServerDisconnectedError, "it closed the connection without an answer"),
    (aiohttp.ClientPayloadError, "the answer was cut off"),
    (aiohttp.ClientResponseError, "it sent something that is not HTTP"),
    (aiohttp.InvalidURL, "its URL is not valid"),
)


def _transport_reason(exc: BaseException) -> str:
    if isinstance(getattr(exc, "os_error", None), NotPublic):
        return NO_PUBLIC_ADDRESS
    return next((why for kind, why in _REASONS if isinstance(exc, kind)), "the connection failed")


def malformed(provider: str, model: str, what: str) -> GatewayError:
    return BackendUnavailable(
        f"{provider} ({model}) sent a malformed answer: {what}.", retry_after=5
    )
