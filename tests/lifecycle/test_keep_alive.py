"""A request's own keep-alive (Ollama's ``keep_alive``, Scheduler.keep_alive) driven by
the fake runtimes of test_scheduler: 0 unloads once the model is idle (after the
requests in flight), seconds expire it on a timer of its own (even where the server
keeps idle models forever, and for a pinned model), None keeps it past the server's
keep-alive."""

# ruff: noqa: F811  (the fixtures world and make come from test_scheduler by import)
from __future__ import annotations

import asyncio
from collections.abc import Callable

from pluggably.lifecycle.scheduler import Scheduler
from tests.lifecycle.test_scheduler import (  # noqa: F401  (world, make: fixtures)
    WAIT_S,
    Req,
    World,
    loaded_ids,
    make,
    start,
    until,
    use,
    world,
)


async def test_zero_unloads_once_the_request_in_flight_ends(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    scheduler.pin({"A"})
    await use(scheduler, "r0", "A")
    req = Req("r1", "A")
    task = start(scheduler, req)
    await until(lambda: "start r1@A" in world.log, "r1 to start")

    assert scheduler.keep_alive("A", 0) is True
    [resident] = scheduler.loaded()
    assert scheduler.expires_at(resident) is not None  # pinned, yet it will go
    await asyncio.sleep(0.1)
    assert "unload A" not in world.log  # never under a running request

    req.open()
    await asyncio.wait_for(task, WAIT_S)
    await until(lambda: "unload A" in world.log, "A to unload")
    assert world.log[-3:] == ["start r1@A", "end r1@A", "unload A"]


async def test_seconds_expire_the_model_where_the_server_keeps_it(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    await use(scheduler, "r1", "A")
    [resident] = scheduler.loaded()
    assert scheduler.expires_at(resident) is None

    assert scheduler.keep_alive("A", 0.3) is True
    assert scheduler.expires_at(resident) is not None
    await asyncio.sleep(0.15)
    assert loaded_ids(scheduler) == ["A"]
    await until(lambda: "unload A" in world.log, "A to expire")
    assert scheduler.keep_alive("A", 5) is False  # nothing loaded to keep


async def test_none_keeps_the_model_past_the_servers_keep_alive(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=0.2)
    await use(scheduler, "r1", "A")
    assert scheduler.keep_alive("A", None) is True
    [resident] = scheduler.loaded()
    assert scheduler.expires_at(resident) is None

    await asyncio.sleep(0.5)  # the server's keep-alive and several of its passes
    assert loaded_ids(scheduler) == ["A"]
    assert "unload A" not in world.log


async def test_a_keep_alive_past_any_date_keeps_the_model_until_evicted(
    make: Callable[..., Scheduler], world: World
) -> None:
    """Ollama reads any number of seconds; one whose deadline no date can hold (1e300,
    inf) stays until evicted rather than failing every listing of the loaded models."""
    scheduler = make(keep_alive_s=0.2)
    await use(scheduler, "r1", "A")
    [resident] = scheduler.loaded()
    for seconds in (1e300, float("inf"), 1e12):
        assert scheduler.keep_alive("A", seconds) is True
        assert scheduler.expires_at(resident) is None
    assert scheduler.keep_alive("A", 3600) is True
    assert scheduler.expires_at(resident) is not None
    await asyncio.sleep(0.5)  # the server's keep-alive and several of its passes
    assert loaded_ids(scheduler) == ["A"]


async def test_the_servers_keep_alive_again_ends_a_requests_own(
    make: Callable[..., Scheduler], world: World
) -> None:
    scheduler = make(keep_alive_s=None)
    await use(scheduler, "r1", "A")
    assert scheduler.keep_alive("A", 0.3) is True
    assert scheduler.server_keep_alive("A") is True  # its timer stops
    [resident] = scheduler.loaded()
    assert scheduler.expires_at(resident) is None
    await asyncio.sleep(0.5)
    assert "unload A" not in world.log
    assert scheduler.server_keep_alive("B") is False  # nothing loaded
