"""Sending calls: the only part of the client that differs between sync and async."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import httpx

from pluggably.client.calls import Call, StreamCall
from pluggably.client.errors import (
    ProtocolError,
    error_from_response,
    error_from_transport,
)
from pluggably.client.events import SSEDecoder

T = TypeVar("T")
E = TypeVar("E")
H = TypeVar("H", bound=httpx.Client | httpx.AsyncClient)

SSE = "text/event-stream"


def credential_headers(api_key: str | None, token: str | None) -> dict[str, str]:
    """``X-API-Key`` for an API key, ``Authorization: Bearer`` for a token (the server
    accepts either for any credential)."""
    headers: dict[str, str] = {}
    if api_key:
        headers["X-API-Key"] = api_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class _Sender(Generic[H]):
    """What both senders share: the request of a call, and the reading of its answer.
    Only the I/O (sending, reading the body, iterating lines) differs between them."""

    def __init__(
        self, http: H, base_url: str, headers: Mapping[str, str], stream_timeout: Any
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.headers = dict(headers)
        self.stream_timeout = stream_timeout

    def _request(self, call: Call[Any] | StreamCall[Any]) -> httpx.Request:
        """The request of ``call``; a stream asks for events and has its own timeout
        (the client's default otherwise)."""
        extra: Mapping[str, str] = {}
        if isinstance(call, StreamCall):
            accept, timeout = SSE, self.stream_timeout
        else:
            accept, extra, timeout = "application/json", call.headers, httpx.USE_CLIENT_DEFAULT
        return self.http.build_request(
            call.route.method,
            call.url,
            params=call.params,
            json=call.body,
            headers={"Accept": accept, **self.headers, **extra},
            timeout=timeout,
        )

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """A connection failure as the client's ``TransportError``."""
        try:
            yield
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.base_url) from exc

    @staticmethod
    def _parse(call: Call[T], response: httpx.Response) -> T:
        if not response.is_success:
            raise error_from_response(response)
        try:
            return call.parse(response)
        except ValueError as exc:  # not JSON, or not the expected shape
            raise ProtocolError(
                f"unexpected answer from {call.route.method} {call.route.path}: {exc}",
                code="bad_response",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from None

    @staticmethod
    def _fallback(call: StreamCall[E], response: httpx.Response) -> list[E]:
        """A streaming call answered with JSON (read) instead of events: an error, or
        what ``call.fallback`` makes of it."""
        if not response.is_success:
            raise error_from_response(response)
        if call.fallback is None:
            raise ProtocolError(
                f"expected an event stream from {call.route.path}", code="bad_response"
            )
        try:
            return call.fallback(response)
        except ValueError as exc:
            raise ProtocolError(f"unexpected answer: {exc}", code="bad_response") from None


def _is_event_stream(response: httpx.Response) -> bool:
    return response.is_success and response.headers.get("content-type", "").startswith(SSE)


class _EventReader(Generic[E]):
    """The events of a stream's lines: ``feed`` answers a line's event (None for most
    lines); ``done`` is set at ``[DONE]``."""

    def __init__(self, call: StreamCall[E]) -> None:
        self.call = call
        self.decoder = SSEDecoder()
        self.done = False

    def feed(self, line: str) -> E | None:
        frame = self.decoder.feed(line)
        if frame is SSEDecoder.DONE:
            self.done = True
            return None
        if frame is None:
            return None
        try:
            return self.call.frame(frame)
        except ValueError as exc:  # a frame that does not have its documented shape
            raise ProtocolError(
                f"unexpected event from {self.call.route.path}: {exc}", code="bad_event"
            ) from None

    def read(self, lines: Iterable[str]) -> Iterator[E]:
        """The events of ``lines`` (a sync stream's; the async sender feeds its own)."""
        for line in lines:
            if (event := self.feed(line)) is not None:
                yield event
            elif self.done:
                return
        raise self.incomplete()

    def incomplete(self) -> ProtocolError:
        return ProtocolError(
            f"the event stream of {self.call.route.path} ended before [DONE]",
            code="incomplete_stream",
        )


class SyncSender(_Sender[httpx.Client]):
    def _open(self, call: Call[Any] | StreamCall[Any], *, stream: bool = False) -> httpx.Response:
        with self._transport_errors():
            return self.http.send(self._request(call), stream=stream)

    def send(self, call: Call[T]) -> T:
        return self._parse(call, self._open(call))

    def stream(self, call: StreamCall[E]) -> Iterator[E]:
        """The events of ``call``; leaving the loop early closes the connection, which
        cancels a generation on the server."""
        response = self._open(call, stream=True)
        try:
            with self._transport_errors():
                if _is_event_stream(response):
                    yield from _EventReader(call).read(response.iter_lines())
                else:
                    response.read()
                    yield from self._fallback(call, response)
        finally:
            response.close()


class AsyncSender(_Sender[httpx.AsyncClient]):
    async def _open(
        self, call: Call[Any] | StreamCall[Any], *, stream: bool = False
    ) -> httpx.Response:
        with self._transport_errors():
            return await self.http.send(self._request(call), stream=stream)

    async def send(self, call: Call[T]) -> T:
        return self._parse(call, await self._open(call))

    async def stream(self, call: StreamCall[E]) -> AsyncIterator[E]:
        """The events of ``call``; closing the iterator early (``aclose()``, or leaving
        an ``async with contextlib.aclosing(...)``) closes the connection."""
        response = await self._open(call, stream=True)
        try:
            with self._transport_errors():
                if not _is_event_stream(response):
                    await response.aread()
                    for fallback in self._fallback(call, response):
                        yield fallback
                    return
                reader = _EventReader(call)
                async for line in response.aiter_lines():
                    if (event := reader.feed(line)) is not None:
                        yield event
                    elif reader.done:
                        return
                raise reader.incomplete()
        finally:
            await response.aclose()
