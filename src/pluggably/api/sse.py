"""Server-sent events: ``data: <json>`` frames, ``: keep-alive`` comments while idle,
and a final ``data: [DONE]`` (or a compatibility surface's own shapes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from pluggably.api.errors import ErrorFormat, render_gateway_error
from pluggably.api.frames import native_frame
from pluggably.generation.events import Event, Failed, LoadingModel, QueuePosition
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.sse")
KEEPALIVE_S = 15.0
INTERNAL_ERROR = "The stream failed on this server; the request id is in the logs."
CANCELLED = "The request was cancelled."
KEEPALIVE = b": keep-alive\n\n"


def _data(item: BaseModel | dict[str, Any]) -> bytes:
    data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _native(item: object) -> bytes:
    """A generation's event as its native frame; other items (a job's progress, a frame
    this layer wrote itself) as they are."""
    if isinstance(item, BaseModel | dict):
        return _data(item)
    return b"data: " + orjson.dumps(native_frame(item)) + b"\n\n"


def _native_error(code: str, message: str) -> dict[str, Any]:
    return {"event": "error", "code": code, "message": message}


@dataclass(frozen=True)
class SSEFormat:
    """How a stream's items are written: the native API's ``data:`` frames ending with
    ``[DONE]``, or a compatibility surface's own shapes. ``error`` builds the item for
    the failures this layer reports itself (a cancel, a bug below)."""

    encode: Callable[[Any], bytes] = _data
    error: Callable[[str, str], Any] = _native_error
    done: bytes = b"data: [DONE]\n\n"


NATIVE = SSEFormat(encode=_native)


class _Frames:
    """Frames from ``events``, with keep-alive comments while it is quiet.

    A producer task drains ``events`` into a queue, so waiting with a timeout never
    interrupts the event source itself. Whatever the queue holds when the writer gets
    to it goes out as one chunk (one write through the ASGI stack instead of one per
    token when the upstream sends faster than the client is written to); a token that
    arrives alone is still written at once. Closing this iterator cancels the producer,
    which closes the source (and with it any upstream call) in the producer's task, and
    closes the source (and ``source``, what the source reads from) even when the stream
    never started."""

    def __init__(
        self, events: AsyncIterator[Any], keepalive_s: float, fmt: SSEFormat, source: object
    ) -> None:
        self._events = events
        self._source = source
        self._chunks = self._run(keepalive_s, fmt)

    def __aiter__(self) -> _Frames:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            try:
                await _aclose(self._events)
            finally:
                await _aclose(self._source)

    async def _produce(self, queue: asyncio.Queue[tuple[str, Any]], fmt: SSEFormat) -> None:
        try:
            async for item in self._events:
                await queue.put(("item", item))
            await queue.put(("end", None))
        except asyncio.CancelledError:
            # Cancelled from elsewhere (POST …/cancel): tell the client, then end. When the
            # consumer itself cancels us on its way out, nobody reads these: harmless.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(("item", fmt.error("cancelled", CANCELLED)))
                queue.put_nowait(("end", None))
            raise
        except Exception as exc:  # delivered to the consumer, which re-raises it
            await queue.put(("error", exc))
        finally:
            await _aclose(self._events)

    async def _run(self, keepalive_s: float, fmt: SSEFormat) -> AsyncGenerator[bytes, None]:
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=64)
        producer = asyncio.create_task(self._produce(queue, fmt))
        try:
            while True:
                if queue.empty():
                    try:
                        async with asyncio.timeout(keepalive_s):
                            entry = await queue.get()
                    except TimeoutError:
                        yield KEEPALIVE
                        continue
                else:
                    entry = queue.get_nowait()
                chunk, ended = _batch(entry, queue, fmt)
                yield chunk
                if ended:
                    break
        finally:
            producer.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await producer


def _batch(
    entry: tuple[str, Any], queue: asyncio.Queue[tuple[str, Any]], fmt: SSEFormat
) -> tuple[bytes, bool]:
    """``entry`` and every entry already queued behind it, as one chunk; and whether
    the stream ended in it."""
    parts: list[bytes] = []
    while True:
        kind, value = entry
        if kind == "item":
            parts.append(fmt.encode(value))
        else:
            if kind == "error":  # a bug below: the client still gets a clean ending
                log.error("sse_source_failed", error=type(value).__name__)
                parts.append(fmt.encode(fmt.error("internal_error", INTERNAL_ERROR)))
            parts.append(fmt.done)
            return b"".join(parts), True
        if queue.empty():
            return b"".join(parts), False
        entry = queue.get_nowait()


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class SSEResponse(StreamingResponse):
    """A stream that stops the moment its client goes away.

    Servers on ASGI 2.4 only report a disconnect when the next write fails, which
    for a slow upstream can be seconds later; here a watcher reads ``receive`` for
    ``http.disconnect`` and cancels the stream at once, and the event source is
    closed before returning, so an upstream call ends with its client."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            streaming.cancel()

        # A plain task, not an anyio task group: this runs once per stream, and the
        # group's cancel scopes cost more than the rest of this method. The watcher only
        # runs at the stream's awaits, so cancelling it first thing below is enough.
        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not gone or streaming.cancelling() > 1:
                raise  # cancelled by someone else too (the server shutting down)
            streaming.uncancel()
        except OSError:
            pass  # the client went away mid-write
        finally:
            watcher.cancel()
            with anyio.CancelScope(shield=True):
                await _aclose(self.body_iterator)


async def _head(events: AsyncIterator[Event]) -> list[Event]:
    """The events up to the first one a compatibility surface shows (or an error),
    notices included; all of them when the stream ends before one."""
    read: list[Event] = []
    while (event := await anext(events, None)) is not None:
        read.append(event)
        if not isinstance(event, QueuePosition | LoadingModel):
            break
    return read


class Opened:
    """A compatibility surface's stream once it is answered with a 200: its head (the
    events up to the first one shown: a read that may still be running) and the rest,
    one iterator. Closing it stops a read still running first (a generator cannot be
    closed while another task runs it)."""

    def __init__(self, head: asyncio.Future[list[Event]], events: AsyncIterator[Event]):
        self.head, self.events = head, events

    async def __aiter__(self) -> AsyncIterator[Event]:
        # A cancel of the head's read (POST …/cancel) raises here, in the SSE layer's
        # producer, which tells the client the request was cancelled.
        for event in await self.head:
            yield event
        async for event in self.events:
            yield event

    async def aclose(self) -> None:
        if not self.head.done():
            self.head.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await self.head
        await _aclose(self.events)


async def opening(
    events: AsyncIterator[Event],
    render: ErrorFormat,
    wait_s: float = KEEPALIVE_S,
) -> tuple[Opened | None, Response | None]:
    """A compatibility surface's stream, held back until its first event that the
    client would see (for at most ``wait_s``; queue and loading notices are not shown
    there, so a request that waits in a local model's queue is held too): when the
    request failed before it (refused by the queue, every candidate tried, nothing
    sent), the plain HTTP error to answer instead of a 200: the real status with
    ``Retry-After`` where set, in the surface's error shape (``render``), which the vendors' SDKs
    raise or retry as they would for the vendor itself. Otherwise the stream, to answer
    with a 200; a failure after this point is an error event. The head is read in a
    task of its own, so a cancel (POST …/cancel) reaches it, and a first event that
    takes longer than ``wait_s`` (a slow upstream, a long queue) is waited for under the
    SSE layer's keep-alives and disconnect watch instead."""
    head = asyncio.ensure_future(_head(events))
    try:
        await asyncio.wait({head}, timeout=wait_s)
    except asyncio.CancelledError:
        head.cancel()
        raise
    opened = Opened(head, events)
    if not head.done() or head.cancelled():
        return opened, None
    read = head.result()
    if not read or not isinstance(read[-1], Failed):
        return opened, None
    await _aclose(events)
    return None, render_gateway_error(read[-1].error, render)


def sse_response(
    events: AsyncIterator[Any],
    keepalive_s: float = KEEPALIVE_S,
    fmt: SSEFormat = NATIVE,
    source: object = None,
) -> StreamingResponse:
    return SSEResponse(
        _Frames(events, keepalive_s, fmt, source),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
