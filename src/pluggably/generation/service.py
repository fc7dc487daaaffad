"""One generation: prepare it, run the candidate loop, and hand its outcome back as a
JSON response (or a 202 while a local model's queue holds it) or as a stream of typed
events, which api/ and the surfaces render."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from functools import partial

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.errors import GatewayError, RequestNotFound
from pluggably.generation.background import Background
from pluggably.generation.callers import CallerCache
from pluggably.generation.candidates import Candidates
from pluggably.generation.events import Completed, Event, Failed
from pluggably.generation.live import LiveRequest, LiveRequests
from pluggably.generation.models import RequestRecord
from pluggably.generation.outcomes import Outcomes
from pluggably.generation.plan import Plan
from pluggably.generation.preparation import Preparation
from pluggably.generation.records import ACTIVE
from pluggably.generation.schemas import Accepted, CancelResult, GenerateResponse
from pluggably.generation.tracking import Relay, Tracked
from pluggably.lifecycle.admission import Reservation
from pluggably.lifecycle.scheduler import Scheduler
from pluggably.observability.logging import get_logger
from pluggably.routing.resolve import LOCAL

log = get_logger("pluggably.generation")
STREAM_FAILED = "The stream failed."


class GenerationService:
    def __init__(
        self,
        preparation: Preparation,
        candidates: Candidates,
        outcomes: Outcomes,
        *,
        callers: CallerCache,
        live: LiveRequests,
        background: Background,
        scheduler: Scheduler,
    ) -> None:
        self.preparation, self.candidates, self.outcomes = preparation, candidates, outcomes
        self.callers, self.live, self.background = callers, live, background
        self.scheduler = scheduler
        # Requests running on other replicas (cluster/; None: this process is alone).
        self.relay: Relay | None = None
        # Everything that can fail with a plain HTTP error, before a stream's 200 goes
        # out or a request is queued.
        self.prepare = preparation.prepare

    async def tracked(self, session: AsyncSession, user_id: str, request_id: str) -> Tracked:
        """One of the caller's requests (404 for anyone else's)."""
        record = await self.outcomes.records.get(session, user_id, request_id)
        live = self.live.get(request_id, user_id)
        replica = self._elsewhere(record) if live is None else None
        if replica is None or self.relay is None:
            return Tracked(record, live)
        relay, check = self.relay, partial(self._status_now, user_id, request_id)
        return Tracked(record, None, partial(relay.follow, replica, request_id, check))

    def _elsewhere(self, record: RequestRecord) -> str | None:
        """The replica running the request, when that is another one."""
        if self.relay is None or record.status not in ACTIVE:
            return None
        replica = record.replica_id
        return replica if replica and replica != self.relay.replica_id else None

    async def _status_now(self, user_id: str, request_id: str) -> str:
        """The record's status as stored now (a relayed request's end)."""
        records = self.outcomes.records
        async with records.db.session() as session:
            try:
                return (await records.get(session, user_id, request_id)).status
            except RequestNotFound:  # deleted with its user meanwhile
                return "failed"

    async def cancel(self, session: AsyncSession, user_id: str, request_id: str) -> CancelResult:
        """Stop a running request; its partial text comes back. Finished requests stay
        as they are."""
        tracked = await self.tracked(session, user_id, request_id)
        live = tracked.live
        replica = self._elsewhere(tracked.record) if live is None else None
        if replica is not None and self.relay is not None:
            check = partial(self._status_now, user_id, request_id)
            partial_text = await self.relay.cancel(replica, request_id, check)
            if partial_text is not None:
                return CancelResult(
                    request_id=request_id,
                    cancelled=True,
                    status="cancelled",
                    partial_output={"text": partial_text},
                )
            # It ended there meanwhile (or its replica did not answer): as stored now.
            status = await check()
            return CancelResult(
                request_id=request_id, cancelled=False, status=status, partial_output=None
            )
        if live is None:
            status = tracked.record.status
            return CancelResult(
                request_id=request_id, cancelled=False, status=status, partial_output=None
            )
        await self.live.cancel(live)
        return CancelResult(
            request_id=request_id,
            cancelled=True,
            status="cancelled",
            partial_output={"text": live.partial_text},
        )

    def forget_caller(self, user_id: str) -> None:
        """A profile or a credential changed: the next request reads them again."""
        self.callers.forget(user_id)

    async def close(self) -> None:
        """At shutdown: cancel what still runs here (202'd requests, background loads)
        and wait for it to wind down; their records end as cancelled."""
        for live in self.live.all():
            live.cancel_requested = True
        await self.background.close()

    # JSON
    async def generate(self, plan: Plan, *, wait: bool = True) -> GenerateResponse | Accepted:
        """The response; without ``wait``, a request that has to queue for a local model
        answers 202 at once (``Accepted``) and goes on running here."""
        live = self.live.open(plan.request_id, plan.principal.user_id)
        if wait or plan.targets[0].provider != LOCAL:
            return await self._generate_and_close(plan, live)
        task = asyncio.ensure_future(self._generate_and_close(plan, live))
        queued = asyncio.ensure_future(plan.queued.wait())
        try:
            await asyncio.wait({task, queued}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            queued.cancel()
        if task.done():
            return task.result()
        self.background.keep(task)
        position = plan.position or 1
        return Accepted(
            request_id=plan.request_id,
            queue_position=position,
            estimated_wait_ms=self.scheduler.estimated_wait_ms(plan.targets[0].model, position),
        )

    async def _generate_and_close(self, plan: Plan, live: LiveRequest) -> GenerateResponse:
        try:
            return await self._generate(plan, live)
        finally:
            self.live.close(plan.request_id, live.status)

    async def _generate(self, plan: Plan, live: LiveRequest) -> GenerateResponse:
        # The loop runs in a task of its own: POST …/cancel cancels it, not the caller,
        # who gets the partial answer.
        live.task = asyncio.ensure_future(self._last(self.candidates.run(plan, live, stream=False)))
        try:
            last = await live.task
        except asyncio.CancelledError:
            if not live.cancel_requested:
                raise
            last = None
        if isinstance(last, Completed):
            live.status = "completed"
            return last.response
        if isinstance(last, Failed):
            live.status = "failed"
            raise last.error
        live.status = "cancelled"
        target = plan.trying or plan.targets[0]
        return await self.outcomes.cancelled(plan, target, live.partial_text)

    @staticmethod
    async def _last(events: AsyncGenerator[Event, None]) -> Event | None:
        last = None
        async with contextlib.aclosing(events):
            async for event in events:
                last = event
        return last

    # streams
    async def admit(self, plan: Plan) -> Reservation | None:
        """A native stream's place in its local model's queue, taken before the stream's
        200 goes out: a refusal (the model's queue is full, or the caller already has
        their share of it waiting) is raised here, answered with its own status and
        Retry-After instead of an error frame inside a 200, unless another candidate
        would be tried next. The stream takes the place over; closing what this returns
        gives it back when the stream never started."""
        first = plan.targets[0]
        if first.provider != LOCAL:
            return None
        try:
            return self.candidates.place(plan, first)
        except GatewayError as exc:
            if len(plan.targets) > 1:
                return None  # the stream tries it again, then the next candidate
            self.outcomes.failed(plan, first, exc)
            await self.outcomes.all_failed(plan, exc)
            raise

    def stream(self, plan: Plan) -> AsyncIterator[Event]:
        """The generation's events. Closing the stream before its first event (its
        client went away before the body was read) still ends the request: its record
        says cancelled and its limits give back what they counted."""
        return _PlanStream(self._stream(plan), lambda: self.outcomes.stream_cancelled(plan, ""))

    async def _stream(self, plan: Plan) -> AsyncGenerator[Event, None]:
        live = self.live.open(plan.request_id, plan.principal.user_id)
        live.task = asyncio.current_task()
        status = "cancelled"
        events = self.candidates.run(plan, live, stream=True)
        try:
            async for event in events:
                if isinstance(event, Completed | Failed):
                    status = "completed" if isinstance(event, Completed) else "failed"
                yield event
                # A surface reads the first event in the request's task and the rest
                # in the SSE layer's: a cancel must reach whichever task reads now.
                live.task = asyncio.current_task()
        except Exception:
            log.exception("stream_failed", request_id=plan.request_id)
            status = "failed"
            await self.outcomes.finish(
                plan, status="failed", error=("internal_error", STREAM_FAILED)
            )
            yield Failed(GatewayError(STREAM_FAILED))
        finally:
            with anyio.CancelScope(shield=True):
                await _close_quietly(events, plan.request_id)
                if status == "cancelled" and plan.completed:
                    status = "completed"  # cancelled as its answer was written: too late
                elif status == "cancelled":  # the client went away, or POST …/cancel
                    await self.outcomes.stream_cancelled(plan, live.partial_text)
            self.live.close(plan.request_id, status)


class _PlanStream:
    """An async iterator over a plan's events whose ``aclose`` ends the plan even when
    the generator never started (closing an unstarted generator runs none of its
    ``finally``)."""

    def __init__(
        self, events: AsyncGenerator[Event, None], unstarted: Callable[[], Awaitable[None]]
    ) -> None:
        self._events, self._unstarted, self._started = events, unstarted, False

    def __aiter__(self) -> _PlanStream:
        return self

    async def __anext__(self) -> Event:
        self._started = True
        return await anext(self._events)

    async def aclose(self) -> None:
        if not self._started:
            self._started = True
            with anyio.CancelScope(shield=True):
                await self._unstarted()
        await self._events.aclose()


async def _close_quietly(events: AsyncGenerator[Event, None], request_id: str) -> None:
    """Close a stream's loop (and its upstream) on any way out. A failure to close is
    logged: the stream is already ending, as a cancel or with its own last event."""
    try:
        await events.aclose()
    except Exception:
        log.exception("stream_close_failed", request_id=request_id)
