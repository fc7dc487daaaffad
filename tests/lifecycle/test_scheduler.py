"""The local-model scheduler (lifecycle/scheduler.py) driven by fake runtimes: LRU
eviction, pinning, idle unload, unload while busy, the load limit under concurrent
loads, queue positions, cancellation, a full queue, failed loads, ``wait_for_room``
and the state the registry reads.

The fake runtimes share one ``World``: every load, unload and generation is written
to ``world.log`` in the order it happened (from the worker threads), and anything a
real runtime must never see (a generation on an unloaded runtime, two generations at
once on one runtime, a double unload) is written to ``world.errors``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pluggably.errors import (
    Conflict,
    GatewayError,
    ModelLoading,
    ProviderNotConfigured,
    QueueFull,
)
from pluggably.lifecycle.limits import SchedulerLimits
from pluggably.lifecycle.scheduler import Scheduler
from pluggably.periodic import every
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec

GiB = 1 << 30
WAIT_S = 2.0  # the most any single step of a test may take


class BrokenWeights(GatewayError):
    code = "model_load_failed"
    status = 422
    default_message = "The model's files are unusable."


class World:
    """What the fake runtimes share: the log, load behaviour and counters."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.memory: dict[str, int] = {}  # model id -> memory_bytes (default 1 GiB)
        self.load_delay: dict[str, float] = {}  # model id -> seconds a load takes
        self.load_gate: dict[str, threading.Event] = {}  # a load waits for its gate
        self.unload_delay: dict[str, float] = {}  # model id -> seconds an unload takes
        self.fail_loads: dict[str, int] = {}  # model id -> how many next loads fail
        self.closing = threading.Event()  # teardown: every blocked call returns
        self.parallel = 1  # generations one runtime may run at once (the scheduler's limit)
        self.resident = 0  # runtimes holding memory: from load start to unload end
        self.max_resident = 0
        self.loading = 0
        self.max_loading = 0

    def record(self, entry: str) -> None:
        with self.lock:
            self.log.append(entry)

    def residency(self) -> list[str]:
        """The log's loads and unloads only."""
        return [e for e in self.log if e.split()[0] in ("load", "load-failed", "unload")]

    def starts(self) -> list[str]:
        """Request ids in the order their generations started."""
        return [e.split()[1].split("@")[0] for e in self.log if e.startswith("start ")]

    def runtime(self, spec: ModelSpec) -> FakeRuntime:
        return FakeRuntime(self, spec.model_id)


class FakeRuntime:
    kind = "fake"

    def __init__(self, world: World, model_id: str) -> None:
        self.world = world
        self.model_id = model_id
        self.loaded = False
        self.generating = 0

    @property
    def memory_bytes(self) -> int:
        return self.world.memory.get(self.model_id, GiB)

    def load(self) -> None:
        world, mid = self.world, self.model_id
        world.record(f"load {mid}")
        with world.lock:
            world.loading += 1
            world.max_loading = max(world.max_loading, world.loading)
            world.resident += 1
            world.max_resident = max(world.max_resident, world.resident)
        try:
            if mid in world.load_delay:
                time.sleep(world.load_delay[mid])
            gate = world.load_gate.get(mid)
            while gate is not None and not (gate.is_set() or world.closing.is_set()):
                gate.wait(0.002)
            with world.lock:
                failing = world.fail_loads.get(mid, 0) > 0
                if failing:
                    world.fail_loads[mid] -= 1
                    world.resident -= 1
            if failing:
                world.record(f"load-failed {mid}")
                raise BrokenWeights(f"'{mid}' has a truncated weights file.")
            self.loaded = True
        finally:
            with world.lock:
                world.loading -= 1

    def unload(self) -> None:
        world = self.world
        if not self.loaded:
            world.errors.append(f"unload of {self.model_id}, which is not loaded")
        self.loaded = False
        time.sleep(world.unload_delay.get(self.model_id, 0.0))
        with world.lock:
            world.resident -= 1
        world.record(f"unload {self.model_id}")

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        world, rid = self.world, call.parameters["rid"]
        gate: threading.Event = call.parameters["gate"]
        with world.lock:
            if not self.loaded:
                world.errors.append(f"{rid} generated on {self.model_id} while unloaded")
            self.generating += 1
            if self.generating > world.parallel:
                world.errors.append(f"{rid} overlapped another generation on {self.model_id}")
        world.record(f"start {rid}@{self.model_id}")
        try:
            while not (gate.is_set() or cancel.is_set() or world.closing.is_set()):
                gate.wait(0.002)
            if cancel.is_set():
                world.record(f"cancelled {rid}@{self.model_id}")
                return LocalResult(text="", finish_reason="cancelled")
            time.sleep(call.parameters.get("hold", 0.0))
            world.record(f"end {rid}@{self.model_id}")
            return LocalResult(text=rid)
        finally:
            with world.lock:
                self.generating -= 1

    def stream(self, call: LocalCall, cancel: threading.Event) -> Generator[str, None, LocalResult]:
        result = self.generate(call, cancel)
        yield result.text or ""
        return result


def spec(model_id: str) -> ModelSpec:
    return ModelSpec(model_id, Path(f"/models/{model_id}.gguf"), "gguf", "text")


@dataclass(eq=False)
class Req:
    """One request: its generation runs until ``gate`` (or ``cancel``) is set."""

    rid: str
    model: str
    hold: float = 0.0  # seconds the generation takes once its gate is open
    gate: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)
    positions: list[int] = field(default_factory=list)
    granted: bool = False
    loading_notices: int = 0

    def open(self) -> Req:
        self.gate.set()
        return self


async def serve(scheduler: Scheduler, req: Req, *, wait_for_room: bool = True) -> LocalResult:
    """What the real caller does: hold a slot and run the generation in it."""

    def on_loading() -> None:
        req.loading_notices += 1

    async with scheduler.slot(
        spec(req.model),
        req.rid,
        listener=req.positions.append,
        on_loading=on_loading,
        wait_for_room=wait_for_room,
    ) as slot:
        req.granted = True
        call = LocalCall(
            messages=[], parameters={"rid": req.rid, "gate": req.gate, "hold": req.hold}
        )
        return await slot.run(slot.runtime.generate, call, req.cancel)


def start(scheduler: Scheduler, req: Req, **kwargs: Any) -> asyncio.Task[LocalResult]:
    return asyncio.get_running_loop().create_task(serve(scheduler, req, **kwargs))


async def use(scheduler: Scheduler, rid: str, model: str) -> None:
    """One complete request that returns at once."""
    result = await asyncio.wait_for(serve(scheduler, Req(rid, model).open()), WAIT_S)
    assert result.text == rid


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def settle() -> None:
    """Let the event loop run every callback that is ready (a few turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


def loaded_ids(scheduler: Scheduler) -> list[str]:
    return [r.spec.model_id for r in scheduler.loaded()]


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.closing.set()


@pytest.fixture
async def make(world: World) -> AsyncIterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []
    keep_alive: list[asyncio.Task[None]] = []

    def make(**limits: Any) -> Scheduler:
        scheduler = Scheduler(world.runtime, SchedulerLimits(**limits))
        world.parallel = scheduler.limits.parallel
        made.append(scheduler)
        if (tick := scheduler.idle_tick_s) is not None:  # as the lifespan runs it
            keep_alive.append(
                asyncio.create_task(every(tick, "idle_unload", scheduler.unload_idle))
            )
        return scheduler

    yield make
    for task in keep_alive:
        task.cancel()
    await asyncio.gather(*keep_alive, return_exceptions=True)
    world.closing.set()  # blocked generations and loads return
    for scheduler in made:
        await scheduler.close()
    assert world.errors == []


# 1. LRU eviction


async def test_lru_evicts_the_least_recently_used(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(max_loaded_models=2, keep_alive_s=None)
    await use(scheduler, "r1", "A")
    await use(scheduler, "r2", "B")
    await use(scheduler, "r3", "A")  # A is now more recent than B
    await use(scheduler, "r4", "C")

    assert world.residency() == ["load A", "load B", "unload B", "load C"]
    assert world.log == [
        "load A",
        "start r1@A",
        "end r1@A",
        "load B",
        "start r2@B",
        "end r2@B",
        "start r3@A",
        "end r3@A",
        "unload B",
        "load C",
        "start r4@C",
        "end r4@C",
    ]
    assert loaded_ids(scheduler) == ["A", "C"]


async def test_memory_budget_evicts_until_the_new_model_fits(
    make: Callable[..., Scheduler], world: World
) -> None:
    world.memory.update(A=4 * GiB, B=4 * GiB, C=7 * GiB)
    scheduler = make(max_loaded_models=3, memory_budget_bytes=10 * GiB, keep_alive_s=None)
    await use(scheduler, "r1", "A")
    await use(scheduler, "r2", "B")  # 8 GiB: both fit
    await use(scheduler, "r3", "C")  # 15 GiB > 10: A (LRU), then B must go

    assert world.residency() == ["load A", "load B", "unload A", "unload B", "load C"]
    assert loaded_ids(scheduler) == ["C"]


# 2. Pinned models


async def test_pinned_model_is_never_evicted(make: Callable[..., Scheduler], world: World) -> None:
    scheduler = make(max_loaded_models=2, keep_alive_s=None)
    scheduler.pin({"A"})
    await use(scheduler, "r1", "A")
    await use(scheduler, "r2", "B")
    await use(scheduler, "r3", "C")  # A is the least recent, but pinned: B goes
    await use(scheduler, "r4", "D")

    assert world.residency() == ["load A", "load B", "unload B", "load C", "unload C", "load D"]
    assert loaded_ids(scheduler) == ["A", "D"]


async def test_a_load_that_only_pinned_models_could_make_room_for_is_refused_not_awaited(
    make: Callable[..., Scheduler], world: World
) -> None:
    """Every loaded model pinned: nothing will ever make room, so a request that would
    wait for room answers 503 model_loading at once instead of waiting forever."""
    scheduler = make(max_loaded_models=2, keep_alive_s=None)
    scheduler.pin({"A", "B"})
    await use(scheduler, "r1", "A")
    await use(scheduler, "r2", "B")
    with pytest.raises(ModelLoading, match="every loaded model is pinned"):
        await asyncio.wait_for(scheduler.ensure_loaded(spec("C")), timeout=5)
    assert loaded_ids(scheduler) == ["A", "B"]


async def test_pinned_model_is_not_unloaded_when_idle(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(max_loaded_models=2, keep_alive_s=0.2)
    scheduler.pin({"A"})
    await use(scheduler, "r1", "A")
    await use(scheduler, "r2", "B")
    # A has been idle longer than B; the keep-alive pass looks at every resident on each tick,
    # so when B goes for idleness, A was passed over.
    await until(lambda: "unload B" in world.log, "B to idle-unload")

    assert loaded_ids(scheduler) == ["A"]
    assert world.residency() == ["load A", "load B", "unload B"]
    a = scheduler.loaded()[0]
    assert scheduler.expires_at(a) is None


# 3. Idle unload


async def test_idle_model_unloads_after_keep_alive(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=0.2)
    await use(scheduler, "r1", "A")
    [resident] = scheduler.loaded()
    assert scheduler.expires_at(resident) is not None

    await until(lambda: "unload A" in world.log, "A to idle-unload")

    assert time.monotonic() - resident.last_used >= 0.2  # the clock is time.monotonic
    assert world.log == ["load A", "start r1@A", "end r1@A", "unload A"]
    assert scheduler.state("A").status == "unloaded"


async def test_model_in_flight_is_not_idle_unloaded(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=0.2)
    req = Req("r1", "A")
    task = start(scheduler, req)
    await until(lambda: "start r1@A" in world.log, "r1 to start")

    await asyncio.sleep(0.4)  # keep-alive and several of its passes, all while in flight
    assert scheduler.is_loaded("A")
    assert scheduler.state("A").status == "busy"

    req.open()
    await asyncio.wait_for(task, WAIT_S)
    [resident] = scheduler.loaded()  # idle only from now on
    await until(lambda: "unload A" in world.log, "A to idle-unload")

    assert time.monotonic() - resident.last_used >= 0.2
    assert world.log == ["load A", "start r1@A", "end r1@A", "unload A"]


# 4. Unload while in flight


async def test_unload_of_busy_model_is_a_conflict_unless_forced(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    req = Req("r1", "A")
    task = start(scheduler, req)
    await until(lambda: "start r1@A" in world.log, "r1 to start")

    with pytest.raises(Conflict) as refused:
        await scheduler.unload("A")
    assert refused.value.code == "conflict"
    assert refused.value.status == 409
    assert scheduler.is_loaded("A")

    forced = asyncio.get_running_loop().create_task(scheduler.unload("A", force=True))
    await asyncio.sleep(0.05)
    assert not forced.done()  # waiting for r1
    assert scheduler.is_loaded("A")
    assert world.log == ["load A", "start r1@A"]

    req.open()
    assert (await asyncio.wait_for(task, WAIT_S)).text == "r1"
    assert await asyncio.wait_for(forced, WAIT_S) is True

    assert world.log == ["load A", "start r1@A", "end r1@A", "unload A"]
    assert loaded_ids(scheduler) == []


async def test_forced_unload_then_waiting_request_loads_again(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    world.unload_delay["A"] = 0.05  # r2 must not load a second copy meanwhile
    first, second = Req("r1", "A"), Req("r2", "A").open()
    t1 = start(scheduler, first)
    await until(lambda: "start r1@A" in world.log, "r1 to start")
    t2 = start(scheduler, second)
    await settle()
    forced = asyncio.get_running_loop().create_task(scheduler.unload("A", force=True))
    await settle()

    first.open()
    await asyncio.wait_for(asyncio.gather(t1, t2, forced), WAIT_S)

    assert world.log == [
        "load A",
        "start r1@A",
        "end r1@A",
        "unload A",
        "load A",
        "start r2@A",
        "end r2@A",
    ]
    assert world.max_resident == 1


async def test_load_waits_for_an_unload_in_progress(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(max_loaded_models=1, keep_alive_s=None)
    world.unload_delay["A"] = 0.05
    await use(scheduler, "r1", "A")

    unloading = asyncio.get_running_loop().create_task(scheduler.unload("A"))
    await settle()  # A's unload is running in its thread
    await asyncio.wait_for(asyncio.gather(unloading, use(scheduler, "r2", "B")), WAIT_S)

    assert world.residency() == ["load A", "unload A", "load B"]
    assert world.max_resident == 1


async def test_forced_unload_right_after_a_load_does_not_strand_its_request(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    gate = world.load_gate["A"] = threading.Event()
    req = Req("r1", "A").open()

    async def load_then_unload() -> bool:
        # Joined the load first, so this resumes before r1 does when it completes.
        await scheduler.ensure_loaded(spec("A"))
        return await scheduler.unload("A", force=True)

    unloader = asyncio.get_running_loop().create_task(load_then_unload())
    await until(lambda: world.loading == 1, "the load to start")
    task = start(scheduler, req)  # admitted, waits on the same load
    await settle()
    gate.set()

    assert await asyncio.wait_for(unloader, WAIT_S) is True
    assert (await asyncio.wait_for(task, WAIT_S)).text == "r1"
    # r1 did not run on the unloaded runtime: it loaded the model again.
    assert world.log.count("load A") == 2
    assert world.log.count("unload A") == 1
    assert world.log.index("start r1@A") > world.log.index("load A", 1)
    assert loaded_ids(scheduler) == ["A"]


async def test_unload_of_pinned_idle_model_is_a_conflict_unless_forced(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    scheduler.pin({"A"})
    await use(scheduler, "r1", "A")

    with pytest.raises(Conflict):
        await scheduler.unload("A")
    assert scheduler.is_loaded("A")

    assert await asyncio.wait_for(scheduler.unload("A", force=True), WAIT_S) is True
    assert await scheduler.unload("A") is False  # not loaded any more
    assert world.residency() == ["load A", "unload A"]


# 5. The load limit under concurrent loads


async def test_concurrent_loads_respect_the_limit(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(max_loaded_models=2, keep_alive_s=None, parallel=3)
    world.load_delay.update(A=0.01, B=0.01, C=0.01, D=0.01)
    reqs = [Req(f"{m}{i}", m, hold=0.03).open() for i in range(3) for m in "ABCD"]
    tasks = [start(scheduler, r) for r in reqs]

    results = await asyncio.wait_for(asyncio.gather(*tasks), 5.0)

    assert [r.text for r in results] == [r.rid for r in reqs]
    assert sorted(world.starts()) == sorted(r.rid for r in reqs)
    assert world.max_loading == 1
    assert world.max_resident == 2
    count = peak = 0
    for entry in world.residency():
        count += 1 if entry.startswith("load ") else -1
        peak = max(peak, count)
    assert peak == 2
    assert len(scheduler.loaded()) == 2


async def test_fresh_model_is_not_evicted_before_its_request_runs(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(max_loaded_models=2, keep_alive_s=None)
    a, b, c = Req("a1", "A"), Req("b1", "B"), Req("c1", "C")
    ta = start(scheduler, a)
    await until(lambda: "start a1@A" in world.log, "a1 to start")
    tb, tc = start(scheduler, b), start(scheduler, c)  # C's load queues behind B's
    await until(lambda: "start b1@B" in world.log, "b1 to start")
    await asyncio.sleep(0.02)
    assert world.residency() == ["load A", "load B"]  # C waits: A and B are both busy

    a.open()
    await until(lambda: "start c1@C" in world.log, "c1 to start")
    b.open()
    c.open()
    await asyncio.wait_for(asyncio.gather(ta, tb, tc), WAIT_S)

    assert world.residency() == ["load A", "load B", "unload A", "load C"]
    assert world.log.index("end a1@A") < world.log.index("unload A")


# 6. Queue positions


async def test_queue_positions_renumber_as_requests_leave(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(parallel=1, keep_alive_s=None)
    head = Req("r0", "A")
    t0 = start(scheduler, head)
    await until(lambda: "start r0@A" in world.log, "r0 to start")
    w1, w2, w3 = Req("w1", "A"), Req("w2", "A"), Req("w3", "A")
    t1, t2, t3 = start(scheduler, w1), start(scheduler, w2), start(scheduler, w3)
    await until(lambda: scheduler.admission.depth("A") == 3, "three waiters")

    assert (w1.positions, w2.positions, w3.positions) == ([1], [2], [3])
    assert [scheduler.admission.position(r) for r in ("w1", "w2", "w3")] == [1, 2, 3]
    assert scheduler.admission.position("r0") is None  # running, not waiting

    t2.cancel()
    await asyncio.wait({t2}, timeout=WAIT_S)
    assert t2.cancelled()
    assert (w1.positions, w3.positions) == ([1], [3, 2])
    assert scheduler.admission.position("w2") is None
    assert scheduler.admission.position("w3") == 2
    assert scheduler.admission.depth("A") == 2

    head.open()
    await asyncio.wait_for(t0, WAIT_S)
    assert w1.granted
    assert (w1.positions, w3.positions) == ([1], [3, 2, 1])
    assert scheduler.admission.position("w1") is None
    assert scheduler.admission.position("w3") == 1
    assert scheduler.admission.depth("A") == 1

    w1.open()
    w3.open()
    await asyncio.wait_for(asyncio.gather(t1, t3), WAIT_S)
    assert world.starts() == ["r0", "w1", "w3"]
    assert not w2.granted
    assert scheduler.admission.depth("A") == 0


# 7. Cancellation


async def test_cancelled_waiter_leaves_the_queue_and_never_runs(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(parallel=1, keep_alive_s=None)
    head, waiter = Req("r0", "A"), Req("w1", "A").open()
    t0 = start(scheduler, head)
    await until(lambda: "start r0@A" in world.log, "r0 to start")
    t1 = start(scheduler, waiter)
    await until(lambda: scheduler.admission.depth("A") == 1, "w1 to queue")

    t1.cancel()
    await asyncio.wait({t1}, timeout=WAIT_S)
    assert t1.cancelled()
    assert scheduler.admission.depth("A") == 0
    assert scheduler.admission.position("w1") is None

    head.open()
    await asyncio.wait_for(t0, WAIT_S)
    await use(scheduler, "r2", "A")  # the slot r0 gave back is free
    assert not waiter.granted
    assert world.starts() == ["r0", "r2"]


async def test_cancelled_runner_frees_its_slot_when_the_runtime_stops(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(parallel=1, keep_alive_s=None)
    runner, waiter = Req("r1", "A"), Req("r2", "A").open()
    t1 = start(scheduler, runner)
    await until(lambda: "start r1@A" in world.log, "r1 to start")
    t2 = start(scheduler, waiter)
    await until(lambda: scheduler.admission.depth("A") == 1, "r2 to queue")

    t1.cancel()
    await asyncio.sleep(0.05)
    # The runtime has not stopped yet: r1 still holds the slot.
    assert not waiter.granted
    assert scheduler.state("A").status == "busy"
    assert scheduler.admission.depth("A") == 1

    runner.cancel.set()  # what the caller does: stop the runtime
    await until(lambda: waiter.granted, "r2 to be granted", timeout=0.5)
    await asyncio.wait({t1}, timeout=WAIT_S)
    assert t1.cancelled()
    assert (await asyncio.wait_for(t2, WAIT_S)).text == "r2"
    assert world.log == ["load A", "start r1@A", "cancelled r1@A", "start r2@A", "end r2@A"]


# 8. A full queue


async def test_full_queue_refuses_before_waiting(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(parallel=1, max_queue_depth=2, keep_alive_s=None)
    reqs = [Req(f"r{i}", "A") for i in range(1, 4)]
    tasks = [start(scheduler, reqs[0])]
    await until(lambda: "start r1@A" in world.log, "r1 to start")
    tasks += [start(scheduler, r) for r in reqs[1:]]
    await until(lambda: scheduler.admission.depth("A") == 2, "two waiters")

    with pytest.raises(QueueFull) as refused:
        await serve(scheduler, Req("r4", "A").open())
    assert refused.value.code == "queue_full"
    assert refused.value.status == 503
    assert refused.value.retry_after == 5
    assert scheduler.admission.depth("A") == 2

    for r in reqs:
        r.open()
    results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    assert [r.text for r in results] == ["r1", "r2", "r3"]
    assert world.starts() == ["r1", "r2", "r3"]


# 9. A failed load


async def test_failed_load_reaches_every_waiter_and_leaves_nothing_loaded(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(parallel=3, keep_alive_s=None)
    world.fail_loads["A"] = 1
    gate = world.load_gate["A"] = threading.Event()
    reqs = [Req(f"r{i}", "A").open() for i in range(1, 4)]
    tasks = [start(scheduler, r) for r in reqs]
    await until(lambda: world.loading == 1, "the load to start")
    await settle()  # all three join the one load
    assert scheduler.state("A").status == "loading"

    gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)

    assert [type(o) for o in outcomes] == [BrokenWeights] * 3
    assert [str(o) for o in outcomes] == ["'A' has a truncated weights file."] * 3
    assert world.residency() == ["load A", "load-failed A"]  # one load for all three
    assert loaded_ids(scheduler) == []
    assert scheduler.state("A").status == "unloaded"
    assert scheduler.admission.depth("A") == 0
    assert world.resident == 0

    await use(scheduler, "r4", "A")  # the next request tries again
    assert world.residency() == ["load A", "load-failed A", "load A"]
    assert loaded_ids(scheduler) == ["A"]


# 10. No room and no waiting


async def test_no_room_without_waiting_is_model_loading(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(max_loaded_models=1, keep_alive_s=None)
    busy = Req("r1", "A")
    task = start(scheduler, busy)
    await until(lambda: "start r1@A" in world.log, "r1 to start")

    with pytest.raises(ModelLoading) as refused:
        await serve(scheduler, Req("r2", "B").open(), wait_for_room=False)
    assert refused.value.code == "model_loading"
    assert refused.value.status == 503
    assert refused.value.retry_after == 5
    assert loaded_ids(scheduler) == ["A"]
    assert scheduler.state("B").status == "unloaded"
    assert scheduler.admission.depth("B") == 0

    busy.open()
    await asyncio.wait_for(task, WAIT_S)
    result = await asyncio.wait_for(
        serve(scheduler, Req("r3", "B").open(), wait_for_room=False), WAIT_S
    )
    assert result.text == "r3"
    assert world.residency() == ["load A", "unload A", "load B"]


# 11. State


async def test_state_follows_unloaded_loading_busy_loaded(
    make: Callable[..., Scheduler], world: World
) -> None:
    world.memory["A"] = 3 * GiB
    scheduler = make(parallel=1, keep_alive_s=None)
    state = scheduler.state("A")
    assert (state.status, state.queue_depth, state.in_use) == ("unloaded", 0, False)
    assert state.loaded_at is None
    assert scheduler.loaded() == []

    gate = world.load_gate["A"] = threading.Event()
    first, second = Req("r1", "A"), Req("r2", "A")
    t1 = start(scheduler, first)
    await until(lambda: world.loading == 1, "the load to start")
    assert first.loading_notices == 1
    t2 = start(scheduler, second)
    await until(lambda: scheduler.admission.depth("A") == 1, "r2 to queue")
    state = scheduler.state("A")
    assert (state.status, state.queue_depth, state.in_use) == ("loading", 1, True)
    assert scheduler.loaded() == []

    gate.set()
    await until(lambda: "start r1@A" in world.log, "r1 to start")
    state = scheduler.state("A")
    assert (state.status, state.queue_depth, state.memory_bytes) == ("busy", 1, 3 * GiB)
    assert state.loaded_at is not None
    assert loaded_ids(scheduler) == ["A"]

    first.open()
    await until(lambda: "start r2@A" in world.log, "r2 to start")
    state = scheduler.state("A")
    assert (state.status, state.queue_depth) == ("busy", 0)
    assert second.loading_notices == 0  # already loaded when r2 got its slot

    second.open()
    await asyncio.wait_for(asyncio.gather(t1, t2), WAIT_S)
    state = scheduler.state("A")
    assert (state.status, state.queue_depth, state.in_use) == ("loaded", 0, True)
    [resident] = scheduler.loaded()
    assert (resident.spec.model_id, resident.memory_bytes, resident.in_flight) == ("A", 3 * GiB, 0)
    assert resident.mean_ms is not None


async def test_with_local_models_off_nothing_loads_and_the_refusal_says_why(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(enabled=False)
    with pytest.raises(ProviderNotConfigured, match="Local models are off on this server"):
        await use(scheduler, "r1", "A")
    assert world.log == []
    assert loaded_ids(scheduler) == []
