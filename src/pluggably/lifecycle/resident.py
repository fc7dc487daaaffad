"""A loaded local model (its runtime, use and keep-alive bookkeeping), and a request's
hold on one while its slot is open. The scheduler creates both; nothing else holds a
runtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pluggably.runtimes.base import ModelSpec, Runtime

T = TypeVar("T")


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
    # A keep-alive a request set for this model (Ollama's ``keep_alive``), which wins
    # over the server's and over a pin while the model stays loaded: seconds idle
    # before it unloads (0: as soon as it is idle), None: until evicted.
    own_keep_alive: bool = False
    keep_alive_s: float | None = None
    expiring: bool = False  # the timer of that keep-alive runs (Scheduler._expire)

    @property
    def memory_bytes(self) -> int:
        return self.runtime.memory_bytes


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
