"""The HTTP plumbing every adapter shares: send, map failures, always close."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx

from pluggably.errors import GatewayError
from pluggably.providers import errors

T = TypeVar("T")
StatusMapper = Callable[[str, str, int, httpx.Headers, bytes], GatewayError]


async def stream(
    client: httpx.AsyncClient,
    request: httpx.Request,
    provider: str,
    model: str,
    frames: Callable[[httpx.Response], AsyncIterator[T]],
    *,
    from_status: StatusMapper = errors.from_status,
) -> AsyncIterator[T]:
    """What ``frames`` reads from the streamed response, with HTTP and transport
    failures mapped to gateway errors; the response is closed however it ends,
    which is what stops the upstream when our own client goes away."""
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise errors.from_transport(provider, model, exc) from None
    try:
        if response.status_code >= 400:
            body = await response.aread()
            raise from_status(provider, model, response.status_code, response.headers, body)
        async for item in frames(response):
            yield item
    except httpx.HTTPError as exc:
        raise errors.from_transport(provider, model, exc) from None
    finally:
        await response.aclose()
