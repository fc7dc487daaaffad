"""Model residency: the one owner of loaded local models. Requests reach a model
through its slots, which admission (admission.py) hands out.

Who owns what
- ``Scheduler._loaded``: model id -> Resident (runtime, in-flight count, last use,
  keep-alive deadline). Nothing else holds a runtime; a request borrows it through a
  ``Slot`` and gives it back when the slot closes.
- ``Scheduler.admission``: each model's queue for its slots; a model with requests
  running or waiting there is not idle.
- Loads and unloads run in a worker thread, one load at a time (``_load_lock``).

How it fails
- A cancelled runner is stopped by the caller (the cancel event), and its slot frees
  when the runtime returns.
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
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pluggably.errors import Conflict, ModelLoading, ProviderNotConfigured
from pluggably.lifecycle.admission import Admission, Reservation
from pluggably.lifecycle.fair_queue import PositionListener
from pluggably.lifecycle.limits import SchedulerLimits
from pluggably.lifecycle.resident import Resident, Slot
from pluggably.lifecycle.state import RuntimeState
from pluggably.observability.logging import get_logger
from pluggably.runtimes.base import ModelSpec, Runtime, RuntimeFactory

log = get_logger("pluggably.lifecycle")

# A request's keep-alive this long or longer (or not a number) keeps the model until
# evicted: a deadline past it may not fit a date (``expires_at``), and none is meant.
FOREVER_S = 10 * 365 * 24 * 3600.0


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
        self.admission = Admission(
            self.limits,
            clock=clock,
            service_ms=self._service_ms,
            on_change=self._notify,
            metrics=metrics,
        )
        # loads nobody waits for, and the timers of requests' own keep-alives
        self._background: set[asyncio.Task[None]] = set()
        self._pinned: set[str] = set()
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
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
        return resident.in_flight == 0 and not self.admission.holds(resident.spec.model_id)

    def _service_ms(self, model_id: str) -> float | None:
        resident = self._loaded.get(model_id)
        return resident.mean_ms if resident else None

    def keep_alive_of(self, resident: Resident) -> float | None:
        """Seconds the model may stay idle before it unloads; None: until evicted. A
        request's own keep-alive wins over the server's, and over a pin."""
        if resident.own_keep_alive:
            return resident.keep_alive_s
        if resident.spec.model_id in self._pinned:
            return None
        return self.limits.keep_alive_s

    def expires_at(self, resident: Resident) -> datetime | None:
        keep = self.keep_alive_of(resident)
        if keep is None:
            return None
        idle_for = self.clock() - resident.last_used
        return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=max(keep - idle_for, 0))

    def state(self, model_id: str) -> RuntimeState:
        resident = self._loaded.get(model_id)
        depth = self.admission.depth(model_id)
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

    # admission's, for the generation service, which holds only the scheduler
    def estimated_wait_ms(self, model_id: str, position: int) -> int | None:
        return self.admission.estimated_wait_ms(model_id, position)

    def reserve(self, model_id: str, request_id: str, user: str | None = None) -> Reservation:
        """See ``Admission.reserve``: refusals are raised here, before anything waits."""
        return self.admission.reserve(model_id, request_id, user)

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
        await self.admission.admit(spec.model_id, request_id, user, listener)
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
            self.admission.leave(spec.model_id)

    # residency
    async def ensure_loaded(self, spec: ModelSpec, *, wait_for_room: bool = True) -> Resident:
        """The model's resident, loading it (after making room) when needed."""
        if not self.limits.enabled:
            raise ProviderNotConfigured(
                "Local models are off on this server (local_models: false, as in every "
                "worker of `serve --workers`); name a provider or endpoint model."
            )
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

    def _check_room(self, spec: ModelSpec) -> None:
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
                if not self._unloading and self._loaded.keys() <= self._pinned:
                    # Waiting would be forever: pinned models are never evicted.
                    raise ModelLoading(
                        f"'{spec.model_id}' cannot load: every loaded model is pinned (the "
                        "default of its modality). Raise max_loaded_models or the memory "
                        "budget, or make another model a default.",
                        retry_after=30,
                    )
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

    async def load(self, spec: ModelSpec, *, wait: bool = False) -> Literal["loaded", "loading"]:
        """A load asked for by hand: "loaded" once the model is (it already was, or
        ``wait``), else "loading", the load going on here. It never waits for room: a
        503 now, when every loaded model is busy or pinned, rather than a load that can
        never start."""
        if self.is_loaded(spec.model_id) or wait:
            await self.ensure_loaded(spec, wait_for_room=False)
            return "loaded"
        self._check_room(spec)
        task = asyncio.ensure_future(self._load_quietly(spec))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return "loading"

    async def _load_quietly(self, spec: ModelSpec) -> None:
        """A load nobody waits for: its failure is only logged (the next request tries
        again)."""
        try:
            await self.ensure_loaded(spec, wait_for_room=False)
        except Exception as exc:
            log.warning("model_load_failed", model_id=spec.model_id, error=str(exc))

    # idleness
    @property
    def idle_tick_s(self) -> float | None:
        """How often ``unload_idle`` should run (None: models stay until evicted)."""
        keep = self.limits.keep_alive_s
        return None if keep is None else min(max(keep / 4, 0.05), 5.0)

    async def unload_idle(self) -> None:
        """One pass of the keep-alive (the lifespan runs it every ``idle_tick_s``):
        unload each idle, unpinned model unused for ``keep_alive_s``. A model with a
        keep-alive of its own is left to its own timer (``keep_alive``)."""
        keep = self.limits.keep_alive_s
        if keep is None or self._closed:
            return
        now = self.clock()
        for resident in list(self._loaded.values()):
            model_id = resident.spec.model_id
            if (
                self._idle(resident)
                and not resident.own_keep_alive
                and model_id not in self._pinned
                and now - resident.last_used >= keep
                and self._loaded.get(model_id) is resident
            ):
                await self._unload(resident, reason="idle_unload")

    def keep_alive(self, model_id: str, seconds: float | None) -> bool:
        """A request's keep-alive for a loaded model (False when it is not loaded): it
        unloads once idle for ``seconds`` (0: as soon as its requests, running and
        queued, are done), or with None (or ``FOREVER_S`` and more) stays until
        evicted; pinned or not. It lasts
        while the model stays loaded; a timer of its own unloads it, so it holds even
        where the server keeps idle models forever."""
        resident = self._loaded.get(model_id)
        if resident is None or resident.draining or self._closed:
            return False
        if seconds is not None and not seconds < FOREVER_S:  # nan too
            seconds = None
        resident.own_keep_alive = True
        resident.keep_alive_s = None if seconds is None else max(seconds, 0.0)
        if seconds is not None and not resident.expiring:
            resident.expiring = True
            task = asyncio.ensure_future(self._expire(resident))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._notify()  # a timer already running reads the new value
        return True

    def server_keep_alive(self, model_id: str) -> bool:
        """The server's keep-alive (or pin) again for a loaded model, ending a request's
        own (its timer stops); False when it is not loaded."""
        resident = self._loaded.get(model_id)
        if resident is None or resident.draining or self._closed:
            return False
        resident.own_keep_alive, resident.keep_alive_s = False, None
        self._notify()  # the timer reads None and stops
        return True

    async def _expire(self, resident: Resident) -> None:
        """Unload ``resident`` once it has been idle for its own keep-alive; woken by
        every change (a request done, a new keep-alive) to look again."""
        try:
            while self._loaded.get(resident.spec.model_id) is resident:
                keep = resident.keep_alive_s
                if keep is None:
                    return
                left = resident.last_used + keep - self.clock()
                if left <= 0 and self._idle(resident) and not resident.draining:
                    await self._unload(resident, reason="idle_unload")
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left if left > 0 else None):
                        await self._wait_change()
        finally:
            resident.expiring = False

    def _notify(self) -> None:
        """Wake everything waiting for a model to go idle, unload or load."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def close(self, grace_s: float = 10.0) -> None:
        """Unload everything (at shutdown). A model still
        generating after ``grace_s`` (its requests are cancelled before this) is left
        to the process's exit: freeing weights under a running generation would crash."""
        self._closed = True
        for task in self._background:
            task.cancel()  # a load nobody waits for; the load itself runs on, shielded
        await asyncio.gather(*self._background, return_exceptions=True)
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
