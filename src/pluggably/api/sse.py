"""Server-sent events: ``data: <json>`` frames, ``: keep-alive`` comments while idle,
and a final ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

KEEPALIVE_S = 15.0


def _frame(item: BaseModel | dict[str, Any]) -> bytes:
    data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _frames(
    events: AsyncIterator[BaseModel | dict[str, Any]], keepalive_s: float
) -> AsyncIterator[bytes]:
    iterator = aiter(events)
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=keepalive_s)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                break
            finally:
                pending = None
            yield _frame(item)
        yield b"data: [DONE]\n\n"
    finally:
        if pending is not None:
            pending.cancel()
            # The generator is still running inside that task: let it unwind first.
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def sse_response(
    events: AsyncIterator[BaseModel | dict[str, Any]], keepalive_s: float = KEEPALIVE_S
) -> StreamingResponse:
    return StreamingResponse(
        _frames(events, keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
