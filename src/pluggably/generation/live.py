"""Requests in flight in this process: their partial text, listeners for
/v1/requests/{id}/events, and the handle that cancels them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pluggably.generation.events import LiveEvent, Status, TextDelta

TERMINAL = ("completed", "failed", "cancelled")
CANCEL_WAIT_S = 5.0  # a cancel waits this long for the request to wind down


@dataclass
class LiveRequest:
    request_id: str
    user_id: str
    status: str = "running"  # queued | running, then its final status
    position: int | None = None  # 1-based place in a local model's queue
    parts: list[str] = field(default_factory=list)
    task: asyncio.Task[Any] | None = None
    cancel_requested: bool = False
    listeners: set[asyncio.Queue[LiveEvent]] = field(default_factory=set)

    @property
    def partial_text(self) -> str:
        return "".join(self.parts)

    def answered(self) -> None:
        """The answer is in: a cancel from now on comes too late to stop anything and
        must not cut the answer's own writes (files, turn, record) short."""
        self.task = None

    def publish(self, event: LiveEvent) -> None:
        for queue in list(self.listeners):
            if queue.full():  # a stalled listener loses old frames, never blocks the request
                queue.get_nowait()
            queue.put_nowait(event)


class LiveRequests:
    def __init__(self) -> None:
        self._live: dict[str, LiveRequest] = {}

    def open(self, request_id: str, user_id: str) -> LiveRequest:
        live = self._live[request_id] = LiveRequest(request_id, user_id)
        return live

    def get(self, request_id: str, user_id: str) -> LiveRequest | None:
        live = self._live.get(request_id)
        return live if live is not None and live.user_id == user_id else None

    def find(self, request_id: str) -> LiveRequest | None:
        """Whoever's it is: for another replica relaying a caller it has checked."""
        return self._live.get(request_id)

    def all(self) -> list[LiveRequest]:
        return list(self._live.values())

    def delta(self, request_id: str, text: str) -> None:
        live = self._live.get(request_id)
        if live is not None:
            live.status, live.position = "running", None
            live.parts.append(text)
            live.publish(TextDelta(text))

    def close(self, request_id: str, status: str) -> None:
        live = self._live.pop(request_id, None)
        if live is not None:
            live.status = status
            live.publish(Status(request_id, status))

    async def cancel(self, live: LiveRequest) -> None:
        """Stop the request's work; returns once it has wound down (or after 5 s)."""
        live.cancel_requested = True
        if live.task is not None and not live.task.done():
            live.task.cancel()
            await asyncio.wait({live.task}, timeout=CANCEL_WAIT_S)
