"""Background work on a timer, for the app's lifespan to start and cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pluggably.observability.logging import get_logger

log = get_logger("pluggably.periodic")


async def every(
    interval_s: float,
    name: str,
    work: Callable[[], Awaitable[object]],
    *,
    after: asyncio.Event | None = None,
) -> None:
    """Run ``work`` every ``interval_s`` seconds until cancelled, starting once
    ``after`` is set; a failure is logged and the next round still runs."""
    if after is not None:
        await after.wait()
    while True:
        try:
            await work()
        except Exception:
            log.exception("periodic_task_failed", task=name)
        await asyncio.sleep(interval_s)
