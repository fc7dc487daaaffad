"""Sending calls: the only part of the client that differs between sync and async."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from pluggably.client.calls import Call, StreamCall
from pluggably.client.errors import (
    PluggablyError,
    ProtocolError,
    error_from_response,
    error_from_transport,
)
from pluggably.client.events import SSEDecoder

T = TypeVar("T")
E = TypeVar("E")

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


class _Sender:
    def __init__(self, base_url: str, headers: Mapping[str, str], stream_timeout: Any) -> None:
        self.base_url = base_url
        self.headers = dict(headers)
        self.stream_timeout = stream_timeout

    def _headers(
        self, extra: Mapping[str, str], accept: str = "application/json"
    ) -> dict[str, str]:
        return {"Accept": accept, **self.headers, **extra}

    def _transport_error(self, exc: httpx.TransportError) -> PluggablyError:
        return error_from_transport(exc, self.base_url)

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
        """A streaming call answered with JSON instead of events."""
        if call.fallback is None:
            raise ProtocolError(
                f"expected an event stream from {call.route.path}", code="bad_response"
            )
        try:
            return call.fallback(response)
        except ValueError as exc:
            raise ProtocolError(f"unexpected answer: {exc}", code="bad_response") from None


def _incomplete(call: StreamCall[Any]) -> ProtocolError:
    return ProtocolError(
        f"the event stream of {call.route.path} ended before [DONE]", code="incomplete_stream"
    )


def _event(call: StreamCall[E], frame: dict[str, Any]) -> E:
    try:
        return call.frame(frame)
    except ValueError as exc:  # a frame that does not have its documented shape
        raise ProtocolError(
            f"unexpected event from {call.route.path}: {exc}", code="bad_event"
        ) from None


class SyncSender(_Sender):
    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        headers: Mapping[str, str],
        stream_timeout: Any,
    ) -> None:
        super().__init__(base_url, headers, stream_timeout)
        self.http = http

    def send(self, call: Call[T]) -> T:
        try:
            response = self.http.request(
                call.route.method,
                call.url,
                params=call.params,
                json=call.body,
                headers=self._headers(call.headers),
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return self._parse(call, response)

    def stream(self, call: StreamCall[E]) -> Iterator[E]:
        """The events of ``call``; leaving the loop early closes the connection, which
        cancels a generation on the server."""
        request = self.http.build_request(
            call.route.method,
            call.url,
            params=call.params,
            json=call.body,
            headers=self._headers({}, accept=SSE),
            timeout=self.stream_timeout,
        )
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        try:
            if not response.is_success or not response.headers.get("content-type", "").startswith(
                SSE
            ):
                response.read()
                if not response.is_success:
                    raise error_from_response(response)
                yield from self._fallback(call, response)
                return
            decoder = SSEDecoder()
            for line in response.iter_lines():
                frame = decoder.feed(line)
                if frame is SSEDecoder.DONE:
                    return
                if frame is not None:
                    yield _event(call, frame)
            raise _incomplete(call)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            response.close()


class AsyncSender(_Sender):
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        headers: Mapping[str, str],
        stream_timeout: Any,
    ) -> None:
        super().__init__(base_url, headers, stream_timeout)
        self.http = http

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self.http.request(
                call.route.method,
                call.url,
                params=call.params,
                json=call.body,
                headers=self._headers(call.headers),
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return self._parse(call, response)

    async def stream(self, call: StreamCall[E]) -> AsyncIterator[E]:
        """The events of ``call``; closing the iterator early (``aclose()``, or leaving
        an ``async with contextlib.aclosing(...)``) closes the connection."""
        request = self.http.build_request(
            call.route.method,
            call.url,
            params=call.params,
            json=call.body,
            headers=self._headers({}, accept=SSE),
            timeout=self.stream_timeout,
        )
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        try:
            if not response.is_success or not response.headers.get("content-type", "").startswith(
                SSE
            ):
                await response.aread()
                if not response.is_success:
                    raise error_from_response(response)
                for event in self._fallback(call, response):
                    yield event
                return
            decoder = SSEDecoder()
            async for line in response.aiter_lines():
                frame = decoder.feed(line)
                if frame is SSEDecoder.DONE:
                    return
                if frame is not None:
                    yield _event(call, frame)
            raise _incomplete(call)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            await response.aclose()
