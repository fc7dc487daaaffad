"""Model residency: the one owner of loaded local models, and of each model's
admission queue.

Who owns what
- ``Scheduler._loaded``: model id -> Resident (runtime, in-flight count, last use,
  keep-alive deadline). Nothing else holds a runtime; a request borrows it through a
  ``Slot`` and gives it back when the slot closes.
- ``Scheduler._queues``: model id -> Admission (``parallel`` running slots, waiting
  tickets in the order they will be served: users in turn, see admission.py).
  Positions are 1-based; every change renumbers the waiters and calls each waiter's
  listener at once (the SSE layer turns that into a frame).
- ``Scheduler._reserved``: request id -> the place ``reserve`` took for it before its
  ``slot`` call (a stream's place is taken before its 200 goes out); ``slot`` takes
  it over, ``release`` gives back one it never did.
- Loads and unloads run in a worker thread, one load at a time (``_load_lock``).

How it fails
- A full queue raises ``QueueFull`` (503) before the request waits; a user who already
  has their share of it waiting (``max_queue_per_user``) ``RateLimited`` (429), so one
  user cannot take the whole queue. Both are raised synchronously, with Retry-After.
- A cancelled waiter (its task cancelled: client gone, POST …/cancel) leaves the queue
  and the others move up; a cancelled runner is stopped by the caller (the cancel
  event), and its slot frees when the runtime returns.
- A failed load raises the runtime's error to every request waiting on it and leaves
  nothing loaded; the next request tries again.
- Room for a load: least recently used idle (no request in flight or waiting),
  unpinned models are evicted until the count and memory limits hold; when none can
  go the load waits for a model to become idle (or ``ModelLoading`` with
  ``wait=False``). A model still unloading counts until its unload returns, so a
  load never overlaps the memory it is waiting for.
- Unload never interrupts a request: without ``force`` a busy or pinned model is a
  409; with ``force`` it waits for in-flight requests, then unloads.

Tests drive it with fake runtimes: the runtime factory and clock are injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from pluggably.errors import Conflict, ModelLoading, QueueFull, RateLimited
from pluggably.lifecycle.admission import Admission, PositionListener, Ticket
from pluggably.observability.logging import get_logger
from pluggably.registry.service import RuntimeState
from pluggably.runtimes.base import ModelSpec, Runtime, RuntimeFactory

log = get_logger("pluggably.lifecycle")
T = TypeVar("T")
QUEUE_FULL_RETRY_S = 5  # the model's whole queue: nothing says when a place frees
MAX_RETRY_AFTER_S = 300


@dataclass
class SchedulerLimits:
    max_loaded_models: int = 2
    memory_budget_bytes: int | None = None
    keep_alive_s: float | None = 300.0  # None: never unload for idleness
    max_queue_depth: int = 16
    # Waiting requests of one user per model; None: a quarter of max_queue_depth (at
    # least 1). Only requests that name their user (every request of the API does).
    max_queue_per_user: int | None = None
    parallel: int = 1


@dataclass
class Resident:
    spec: ModelSpec
    runtime: Runtime
    loaded_at: datetime
    last_used: float  # monotonic
    last_used_at: datetime
    in_flight: int = 0
    draining: bool = False
    mean_ms: float | None = None  # moving average of a request's time in its slot

    @property
    def memory_bytes(self) -> int:
        return self.runtime.memory_bytes


@dataclass(frozen=True)
class Reservation:
    """A place taken by ``Scheduler.reserve``. Leaving its ``with`` block or closing it
    (the SSE layer closes a stream's source, whether the stream started or not) gives
    the place back, unless the request's ``slot`` took it over."""

    scheduler: Scheduler
    request_id: str

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.scheduler.release(self.request_id)

    async def aclose(self) -> None:
        self.scheduler.release(self.request_id)


@dataclass
class Slot:
    """A request's hold on a model: its runtime while the slot is open."""

    spec: ModelSpec
    runtime: Runtime
    queue_ms: float
    load_ms: float
    executor: ThreadPoolExecutor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking runtime call in the runtimes' worker threads. Cancelled, it
        waits for the call to return (the caller stops it with its cancel event), so
        the slot is not given to the next request while the runtime still runs."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            if not future.cancelled():
                future.exception()  # retrieved: the cancellation is what the caller sees
            raise


class Scheduler:
    def __init__(
        self,
        factory: RuntimeFactory,
        limits: SchedulerLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Any = None,
        workers: int = 4,
    ) -> None:
        self.factory = factory
        self.limits = limits or SchedulerLimits()
        self.clock = clock
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runtime")
        self._loaded: dict[str, Resident] = {}
        self._loading: dict[str, asyncio.Future[Resident]] = {}
        self._unloading: dict[str, Resident] = {}  # out of _loaded, memory not yet freed
        self._queues: dict[str, Admission] = {}
        self._reserved: dict[str, tuple[str, Ticket]] = {}  # request id -> (model id, place)
        self._arrivals = itertools.count()  # tickets' arrival order
        self._pinned: set[str] = set()
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # state
    def pin(self, model_ids: set[str]) -> None:
        """The pinned set (the default of each modality, and models pinned by hand)."""
        self._pinned = set(model_ids)

    def is_pinned(self, model_id: str) -> bool:
        return model_id in self._pinned

    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._loaded

    def runtime_of(self, model_id: str) -> Runtime | None:
        """The model's runtime while it is loaded (for read-only uses: token counts)."""
        resident = self._loaded.get(model_id)
        return resident.runtime if resident is not None else None

    def loaded(self) -> list[Resident]:
        return list(self._loaded.values())

    def _idle(self, resident: Resident) -> bool:
        """No request in flight, admitted (a slot taken, the runtime not yet borrowed:
        e.g. right after its load) or waiting."""
        admission = self._queues.get(resident.spec.model_id)
        held = admission is not None and (admission.running > 0 or bool(admission.waiting))
        return resident.in_flight == 0 and not held

    def queue_depth(self, model_id: str) -> int:
        admission = self._queues.get(model_id)
        return len(admission.waiting) if admission else 0

    def position(self, request_id: str) -> int | None:
        for admission in self._queues.values():
            for ticket in admission.waiting:
                if ticket.request_id == request_id:
                    return ticket.position
        return None

    def expires_at(self, resident: Resident) -> datetime | None:
        keep = self.limits.keep_alive_s
        if keep is None or resident.spec.model_id in self._pinned:
            return None
        idle_for = self.clock() - resident.last_used
        return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=max(keep - idle_for, 0))

    def state(self, model_id: str) -> RuntimeState:
        resident = self._loaded.get(model_id)
        depth = self.queue_depth(model_id)
        if resident is None:
            status = "loading" if model_id in self._loading else "unloaded"
            return RuntimeState(status=status, queue_depth=depth, in_use=depth > 0)
        busy = resident.in_flight > 0
        return RuntimeState(
            status="busy" if busy else "loaded",
            queue_depth=depth,
            loaded_at=resident.loaded_at,
            memory_bytes=resident.memory_bytes,
            in_use=True,
        )

    def estimated_wait_ms(self, model_id: str, position: int) -> int | None:
        """From the model's recent service times (None until one is known)."""
        resident = self._loaded.get(model_id)
        mean = resident.mean_ms if resident else None
        return None if mean is None else int(mean * position / max(self.limits.parallel, 1))

    # admission
    @contextlib.asynccontextmanager
    async def slot(
        self,
        spec: ModelSpec,
        request_id: str,
        *,
        user: str | None = None,
        listener: PositionListener | None = None,
        on_loading: Callable[[], None] | None = None,
        wait_for_room: bool = True,
    ) -> AsyncIterator[Slot]:
        """Wait for a slot of the model (the place ``reserve`` took for the request, else
        one taken now for ``user``), load the model if needed, and hold the slot
        (counted in flight) until the block exits."""
        started = self.clock()
        await self._admit(spec.model_id, request_id, user, listener)
        try:
            queue_ms = (self.clock() - started) * 1000
            loading_started = self.clock()
            was_loaded = spec.model_id in self._loaded
            if not was_loaded and on_loading is not None:
                on_loading()
            resident = await self.ensure_loaded(spec, wait_for_room=wait_for_room)
            while self._loaded.get(spec.model_id) is not resident or resident.draining:
                # Unloaded (forced) between its load and this request taking it.
                resident = await self.ensure_loaded(spec, wait_for_room=wait_for_room)
            # Only a request that waited for a load reports load time.
            load_ms = 0.0 if was_loaded else (self.clock() - loading_started) * 1000
            resident.in_flight += 1
            serving = self.clock()
            try:
                yield Slot(spec, resident.runtime, queue_ms, load_ms, self.executor)
            finally:
                resident.in_flight -= 1
                resident.last_used = self.clock()
                resident.last_used_at = datetime.now(UTC)
                took = (resident.last_used - serving) * 1000
                resident.mean_ms = (
                    took if resident.mean_ms is None else (0.7 * resident.mean_ms + 0.3 * took)
                )
                self._notify()
        finally:
            self._leave(spec.model_id)

    def reserve(self, model_id: str, request_id: str, user: str | None = None) -> Reservation:
        """Take the request's place for the model now, without waiting: a free slot, or
        a place in its queue. The refusals are raised here, synchronously, so a caller
        knows them before it answers anything: ``RateLimited`` (429) when ``user``
        already has their share of the queue waiting, ``QueueFull`` (503) when the queue
        is full. Taken again for the same model, the place stays as it is."""
        held = self._reserved.get(request_id)
        if held is not None and held[0] != model_id:
            self.release(request_id)
            held = None
        if held is None:
            self._reserved[request_id] = (model_id, self._enter(model_id, request_id, user))
        return Reservation(self, request_id)

    def release(self, request_id: str) -> None:
        """Give back the place ``reserve`` took, unless the request's slot took it over."""
        held = self._reserved.pop(request_id, None)
        if held is not None:
            self._withdraw(*held)

    def _enter(self, model_id: str, request_id: str, user: str | None) -> Ticket:
        admission = self._queues.setdefault(model_id, Admission())
        loop = asyncio.get_running_loop()
        ticket = Ticket(request_id, user, loop.create_future(), self.clock(), next(self._arrivals))
        if admission.running < self.limits.parallel and not admission.waiting:
            admission.start(ticket)
            return ticket
        self._check_room(model_id, admission, user)
        admission.wait(ticket)
        self._renumber(admission)
        self._gauge(model_id)
        return ticket

    def _check_room(self, model_id: str, admission: Admission, user: str | None) -> None:
        """The queue's limits: the model's whole queue first (both may hold: a share can
        be as large as the queue), then the user's share of it."""
        limits = self.limits
        if len(admission.waiting) >= limits.max_queue_depth:
            raise QueueFull(
                f"'{model_id}' has {len(admission.waiting)} requests waiting (the limit); "
                "try again shortly or use another model.",
                retry_after=QUEUE_FULL_RETRY_S,
            )
        if user is None:
            return
        share = limits.max_queue_per_user or max(1, limits.max_queue_depth // 4)
        mine = admission.waiting_of(user)
        if len(mine) >= share:
            raise RateLimited(
                f"You have {len(mine)} requests waiting for '{model_id}' (your share of its "
                "queue); send more once one of them has started, or use another model.",
                retry_after=self._retry_after(model_id, mine[0].position),
            )

    def _retry_after(self, model_id: str, position: int) -> int:
        """Seconds until the waiter at ``position`` is likely to have started."""
        wait_ms = self.estimated_wait_ms(model_id, position)
        if wait_ms is None:
            return QUEUE_FULL_RETRY_S
        return min(max(1, math.ceil(wait_ms / 1000)), MAX_RETRY_AFTER_S)

    async def _admit(
        self, model_id: str, request_id: str, user: str | None, listener: PositionListener | None
    ) -> None:
        held = self._reserved.pop(request_id, None)
        if held is not None and held[0] != model_id:
            self._withdraw(*held)
            held = None
        ticket = held[1] if held is not None else self._enter(model_id, request_id, user)
        if ticket.is_granted:  # a free slot: at once, or while it was reserved
            return
        ticket.listener = listener
        self._tell(ticket)
        try:
            await ticket.granted
        except asyncio.CancelledError:
            self._withdraw(model_id, ticket)
            raise
        if self.metrics is not None:
            self.metrics.queue_wait.labels(model_id).observe(self.clock() - ticket.enqueued)

    def _withdraw(self, model_id: str, ticket: Ticket) -> None:
        """Give a place back: the slot when it was granted (perhaps in the same instant
        as a cancel), else its place in line (the others move up)."""
        if ticket.is_granted:
            self._leave(model_id)
            return
        admission = self._queues[model_id]
        admission.withdraw(ticket)
        self._renumber(admission)
        self._gauge(model_id)
        self._notify()

    def _leave(self, model_id: str) -> None:
        """A slot frees: the next in line takes it, the others move up."""
        admission = self._queues[model_id]
        admission.running -= 1
        while admission.running < self.limits.parallel and admission.grant_next() is not None:
            pass
        self._renumber(admission)
        if not admission.running and not admission.waiting:
            del self._queues[model_id]
        self._gauge(model_id)
        self._notify()

    def _renumber(self, admission: Admission) -> None:
        for index, ticket in enumerate(admission.waiting, start=1):
            if ticket.position != index:
                ticket.position = index
                self._tell(ticket)

    def _tell(self, ticket: Ticket) -> None:
        if ticket.listener is not None:
            try:
                ticket.listener(ticket.position)
            except Exception:
                log.exception("position_listener_failed", request_id=ticket.request_id)

    def _gauge(self, model_id: str) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.labels(model_id).set(self.queue_depth(model_id))

    # residency
    async def ensure_loaded(self, spec: ModelSpec, *, wait_for_room: bool = True) -> Resident:
        """The model's resident, loading it (after making room) when needed."""
        while True:
            resident = self._loaded.get(spec.model_id)
            if resident is not None and not resident.draining:
                return resident
            if resident is not None or spec.model_id in self._unloading:
                # draining for a forced unload, or its unload still running: wait it out
                await self._wait_change()
                continue
            pending = self._loading.get(spec.model_id)
            if pending is None:
                # Its own task: a load goes on when the request that started it is
                # cancelled (the model then idles until the keep-alive ends).
                pending = asyncio.ensure_future(self._load(spec, wait_for_room))
                self._loading[spec.model_id] = pending
                pending.add_done_callback(functools.partial(self._loaded_done, spec.model_id))
            return await asyncio.shield(pending)

    def _loaded_done(self, model_id: str, _task: object) -> None:
        task = self._loading.pop(model_id, None)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved here: each waiter gets it from the shield
        self._notify()

    async def _load(self, spec: ModelSpec, wait_for_room: bool) -> Resident:
        async with self._load_lock:
            runtime = self.factory(spec)
            await self._make_room(spec, runtime.memory_bytes, wait_for_room)
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self.executor, runtime.load)
            except BaseException:
                if self.metrics is not None:
                    self.metrics.model_events.labels("load_failed").inc()
                raise
            took = time.perf_counter() - started
            now = self.clock()
            resident = Resident(spec, runtime, datetime.now(UTC), now, datetime.now(UTC))
            self._loaded[spec.model_id] = resident
            log.info("model_loaded", model_id=spec.model_id, seconds=round(took, 3))
            if self.metrics is not None:
                self.metrics.model_events.labels("load").inc()
                self.metrics.model_event_seconds.labels("load").observe(took)
                self.metrics.models_loaded.set(len(self._loaded))
            self._ensure_reaper()
            return resident

    def _over(self, incoming_bytes: int) -> bool:
        limits = self.limits
        holding = [*self._loaded.values(), *self._unloading.values()]
        if len(holding) + 1 > limits.max_loaded_models:
            return True
        if limits.memory_budget_bytes is None:
            return False
        used = sum(r.memory_bytes for r in holding)
        return used + incoming_bytes > limits.memory_budget_bytes

    def _evictable(self) -> Resident | None:
        idle = [
            r
            for r in self._loaded.values()
            if self._idle(r) and not r.draining and r.spec.model_id not in self._pinned
        ]
        return min(idle, key=lambda r: r.last_used, default=None)

    def check_room(self, spec: ModelSpec) -> None:
        """Raise ``ModelLoading`` when the model could not load now without waiting:
        the limits are reached and every loaded model is busy or pinned."""
        if spec.model_id in self._loaded or spec.model_id in self._loading:
            return
        incoming = spec.size_bytes or 0
        if self._loaded and self._over(incoming) and self._evictable() is None:
            raise ModelLoading(
                f"'{spec.model_id}' cannot load now: every loaded model is busy or pinned. "
                "Try again shortly, unload one, or raise max_loaded_models.",
                retry_after=5,
            )

    async def _make_room(self, spec: ModelSpec, incoming_bytes: int, wait: bool) -> None:
        while (self._loaded or self._unloading) and self._over(incoming_bytes):
            victim = self._evictable()
            if victim is None:
                if not wait and not self._unloading:
                    raise ModelLoading(
                        f"'{spec.model_id}' cannot load now: every loaded model is busy or "
                        "pinned. Try again shortly or raise max_loaded_models.",
                        retry_after=5,
                    )
                await self._wait_change()
                continue
            await self._unload(victim, reason="evict")

    async def _unload(self, resident: Resident, *, reason: str) -> None:
        model_id = resident.spec.model_id
        self._loaded.pop(model_id, None)
        self._unloading[model_id] = resident  # still counted until the memory is freed
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, resident.runtime.unload)
        except Exception:
            log.exception("model_unload_failed", model_id=model_id)
        finally:
            self._unloading.pop(model_id, None)
        took = time.perf_counter() - started
        log.info("model_unloaded", model_id=model_id, reason=reason)
        if self.metrics is not None:
            self.metrics.model_events.labels(reason).inc()
            self.metrics.model_event_seconds.labels("unload").observe(took)
            self.metrics.models_loaded.set(len(self._loaded))
        self._notify()

    async def unload(self, model_id: str, *, force: bool = False) -> bool:
        """Unload now (False when it was not loaded). Busy or pinned: 409 unless
        ``force``, which waits for in-flight requests first."""
        resident = self._loaded.get(model_id)
        if resident is None:
            return False
        busy = not self._idle(resident)
        if not force and (busy or model_id in self._pinned):
            what = "pinned (the default of its modality)" if not busy else "serving requests"
            raise Conflict(
                f"'{model_id}' is {what}; unload with force=true to unload it after "
                "in-flight requests finish."
            )
        resident.draining = True
        while resident.in_flight > 0:
            await self._wait_change()
        if self._loaded.get(model_id) is resident:
            await self._unload(resident, reason="unload")
        return True

    # idleness
    def _ensure_reaper(self) -> None:
        if self._reaper is None and self.limits.keep_alive_s is not None and not self._closed:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        keep = self.limits.keep_alive_s
        assert keep is not None
        tick = min(max(keep / 4, 0.05), 5.0)
        while not self._closed:
            await asyncio.sleep(tick)
            now = self.clock()
            for resident in list(self._loaded.values()):
                model_id = resident.spec.model_id
                if (
                    self._idle(resident)
                    and model_id not in self._pinned
                    and now - resident.last_used >= keep
                    and self._loaded.get(model_id) is resident
                ):
                    await self._unload(resident, reason="idle_unload")

    def _notify(self) -> None:
        """Wake everything waiting for a model to go idle, unload or load."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop the reaper and unload everything (at shutdown). A model still
        generating after ``grace_s`` (its requests are cancelled before this) is left
        to the process's exit: freeing weights under a running generation would crash."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        deadline = self.clock() + grace_s
        while any(r.in_flight for r in self._loaded.values()) and self.clock() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(deadline - self.clock(), 0.01)):
                    await self._wait_change()
        for resident in list(self._loaded.values()):
            if resident.in_flight:
                log.warning("model_busy_at_shutdown", model_id=resident.spec.model_id)
                continue
            await self._unload(resident, reason="unload")
        self.executor.shutdown(wait=False, cancel_futures=True)
