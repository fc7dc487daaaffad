"""A caller's request as they can follow it: its stored record and, while it runs in
this process, its live state (queue position, partial text)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pluggably.generation.events import LiveEvent, Status, TextDelta
from pluggably.generation.live import LiveRequest
from pluggably.generation.models import RequestRecord
from pluggably.generation.schemas import RequestDetails, RequestStatus


class Relay(Protocol):
    """Follows and cancels requests running on other replicas (cluster/relay.py)."""

    replica_id: str

    def follow(
        self, replica_id: str, request_id: str, check: Callable[[], Awaitable[str]]
    ) -> AsyncIterator[LiveEvent]: ...

    async def cancel(
        self, replica_id: str, request_id: str, check: Callable[[], Awaitable[str]]
    ) -> str | None: ...


@dataclass(frozen=True)
class Tracked:
    record: RequestRecord
    live: LiveRequest | None  # None: not in flight here
    # In flight on another replica: its events relayed from there (cluster/relay.py).
    remote: Callable[[], AsyncIterator[LiveEvent]] | None = None

    def status(self) -> RequestStatus:
        return RequestStatus.model_validate(self._state())

    def details(self) -> RequestDetails:
        """Status plus the generate response once completed."""
        return RequestDetails.model_validate({**self._state(), "result": self.record.response})

    async def events(self) -> AsyncIterator[LiveEvent]:
        """The status now; for a request in flight (here or on another replica), its
        text so far, then its deltas as they are produced, and its final status."""
        live = self.live
        yield Status(self.record.id, live.status if live else self.record.status)
        if live is None:
            if self.remote is not None:
                async for event in self.remote():
                    yield event
            return
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=256)
        live.listeners.add(queue)
        try:
            if live.parts:  # what was produced before this listener arrived
                yield TextDelta(live.partial_text)
            while True:
                event = await queue.get()
                yield event
                if isinstance(event, Status):  # the final one
                    return
        finally:
            live.listeners.discard(queue)

    def _state(self) -> dict[str, Any]:
        """The stored record; while the request is in flight here, its live state."""
        record, live = self.record, self.live
        in_flight = live is not None and record.status == "running"
        return {
            "request_id": record.id,
            "status": live.status if in_flight and live else record.status,
            "queue_position": live.position if in_flight and live else None,
            "model": record.model,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "error": {"code": record.error_code, "message": record.error_message or ""}
            if record.error_code
            else None,
        }
