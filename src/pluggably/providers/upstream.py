"""The HTTP client every provider call goes through, and the plumbing the adapters
share: send, read bounded bodies, split streams into lines, map every failure onto
the gateway's errors, and always give the connection back (or close it).

It is aiohttp rather than httpx: on this path the client is most of the gateway's
own cost. Measured against bench/overhead.py's upstream on one event loop, httpx
spent 0.52 ms of CPU per JSON call at concurrency 1 and 1.16 ms at concurrency 64
(its pool scans its connections under one lock), aiohttp 0.14 ms and 0.09 ms;
streams 0.79 / 1.34 ms against 0.22 / 0.15 ms.

Redirects are never followed (a vetted URL must not lead elsewhere). Proxy settings
are not read from the environment (aiohttp would look them and ~/.netrc up in a
thread for every request): a proxy is configured explicitly. Idle connections are
dropped after 4 s, before the 5 s after which uvicorn-based servers (vLLM,
llama.cpp's Python server) close theirs, so a request never lands on a connection
the server is closing."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson

from pluggably.errors import GatewayError
from pluggably.netguard import PublicOnlyResolver
from pluggably.providers import errors

T = TypeVar("T")
StatusMapper = Callable[[str, str, int, Mapping[str, str], bytes], GatewayError]
Frames = Callable[[AsyncIterator[str]], AsyncIterator[T]]
# What a transport failure can raise: aiohttp's own errors, timeouts (its read and
# connect timeouts are TimeoutError subclasses) and socket errors.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)

MAX_BODY_BYTES = 64 * 1024 * 1024  # an unstreamed answer (images as base64 included)
MAX_LINE_BYTES = 16 * 1024 * 1024  # one line of a stream


class Upstream:
    def __init__(
        self,
        *,
        timeout_s: float,
        connect_timeout_s: float = 10.0,
        max_connections: int = 512,
        proxy: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        # Read timeouts are per read (a stream may last long, a silence may not);
        # waiting for a pooled connection counts against the whole timeout.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        self._max_connections = max_connections
        self._proxy = proxy
        self.max_body_bytes = max_body_bytes
        # Operator-configured upstreams (any address, loopback included), and URLs that
        # users supply (public addresses only, checked as the connection is made).
        self._clients: dict[bool, aiohttp.ClientSession] = {}

    def _session(self, public_only: bool = False) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop it belongs to.
        client = self._clients.get(public_only)
        if client is None:
            client = self._clients[public_only] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=0,
                    keepalive_timeout=4.0,
                    resolver=PublicOnlyResolver() if public_only else None,
                ),
                timeout=self._timeout,
            )
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def json(
        self,
        method: str,
        url: str,
        *,
        provider: str,
        model: str,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        from_status: StatusMapper = errors.from_status,
        public_only: bool = False,
    ) -> Any:
        """One unstreamed call: the parsed JSON answer, or the mapped error.
        ``public_only``: the URL came from a user; connect to public addresses only."""
        try:
            async with self._session(public_only).request(
                method,
                url,
                json=body,
                headers=headers,
                params=params,
                allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                content = await self._read(response, provider, model)
                if response.status >= 400:
                    raise from_status(provider, model, response.status, response.headers, content)
        except TRANSPORT_ERRORS as exc:
            raise errors.from_transport(provider, model, exc) from None
        try:
            return orjson.loads(content)
        except ValueError:
            raise errors.malformed(provider, model, "not JSON") from None

    async def stream(
        self,
        url: str,
        *,
        provider: str,
        model: str,
        headers: Mapping[str, str],
        body: Any,
        frames: Frames[T],
        from_status: StatusMapper = errors.from_status,
        public_only: bool = False,
    ) -> AsyncGenerator[T, None]:
        """What ``frames`` reads from the lines of a streamed POST, with HTTP and
        transport failures mapped to gateway errors. However it ends, the connection is
        released: back to the pool when the body was read to its end, closed otherwise
        (which is what stops the upstream when our own client goes away)."""
        try:
            response = await self._session(public_only).post(
                url, json=body, headers=headers, allow_redirects=False, proxy=self._proxy
            )
        except TRANSPORT_ERRORS as exc:
            raise errors.from_transport(provider, model, exc) from None
        try:
            if response.status >= 400:
                content = await self._read(response, provider, model)
                raise from_status(provider, model, response.status, response.headers, content)
            async for item in frames(self._lines(response.content, provider, model)):
                yield item
        except TRANSPORT_ERRORS as exc:
            raise errors.from_transport(provider, model, exc) from None
        finally:
            response.release()

    async def _read(self, response: aiohttp.ClientResponse, provider: str, model: str) -> bytes:
        limit = self.max_body_bytes
        if response.content_length is not None and response.content_length > limit:
            raise errors.malformed(provider, model, f"an answer over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise errors.malformed(provider, model, f"an answer over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    async def _lines(
        content: aiohttp.StreamReader, provider: str, model: str
    ) -> AsyncIterator[str]:
        """The body's lines (``\\n`` or ``\\r\\n``), decoded, however the chunks fall."""
        pending = b""
        async for chunk in content.iter_any():
            if pending:
                chunk = pending + chunk
            *complete, pending = chunk.split(b"\n")
            if len(pending) > MAX_LINE_BYTES:
                raise errors.malformed(provider, model, f"a line over {MAX_LINE_BYTES} bytes")
            for line in complete:
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if pending:
            yield pending.removesuffix(b"\r").decode("utf-8", "replace")
