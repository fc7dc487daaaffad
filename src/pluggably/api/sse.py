"""Server-sent events: ``data: <json>`` frames, ``: keep-alive`` comments while idle,
and a final ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from pluggably.observability.logging import get_logger

log = get_logger("pluggably.sse")
KEEPALIVE_S = 15.0
INTERNAL_ERROR_FRAME = {
    "event": "error",
    "code": "internal_error",
    "message": "The stream failed on this server; the request id is in the logs.",
}
CANCELLED_FRAME = {"event": "error", "code": "cancelled", "message": "The request was cancelled."}


def _frame(item: BaseModel | dict[str, Any]) -> bytes:
    data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _frames(
    events: AsyncIterator[BaseModel | dict[str, Any]], keepalive_s: float
) -> AsyncIterator[bytes]:
    """Frames from ``events``, with keep-alive comments while it is quiet.

    A producer task drains ``events`` into a queue, so waiting with a timeout never
    interrupts the event source itself; closing this generator cancels the producer,
    which closes the source (and with it any upstream call) in the producer's task."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=64)

    async def produce() -> None:
        try:
            async for item in events:
                await queue.put(("item", item))
            await queue.put(("end", None))
        except asyncio.CancelledError:
            # Cancelled from elsewhere (POST …/cancel): tell the client, then end. When the
            # consumer itself cancels us on its way out, nobody reads these: harmless.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(("item", CANCELLED_FRAME))
                queue.put_nowait(("end", None))
            raise
        except Exception as exc:  # delivered to the consumer, which re-raises it
            await queue.put(("error", exc))
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    producer = asyncio.create_task(produce())
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), timeout=keepalive_s)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if kind == "end":
                break
            if kind == "error":  # a bug below: the client still gets a clean ending
                log.error("sse_source_failed", error=type(value).__name__)
                yield _frame(INTERNAL_ERROR_FRAME)
                break
            yield _frame(value)
        yield b"data: [DONE]\n\n"
    finally:
        producer.cancel()
        with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
            await producer


class SSEResponse(StreamingResponse):
    """A stream that stops the moment its client goes away.

    Servers on ASGI 2.4 only report a disconnect when the next write fails, which
    for a slow upstream can be seconds later; here a watcher reads ``receive`` for
    ``http.disconnect`` and cancels the stream at once, and the event source is
    closed before returning, so an upstream call ends with its client."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await self.stream_response(send)
            except OSError:
                pass  # the client went away mid-write
            finally:
                group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    aclose = getattr(self.body_iterator, "aclose", None)
                    if aclose is not None:
                        await aclose()


def sse_response(
    events: AsyncIterator[BaseModel | dict[str, Any]], keepalive_s: float = KEEPALIVE_S
) -> StreamingResponse:
    return SSEResponse(
        _frames(events, keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
