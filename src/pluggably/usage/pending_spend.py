"""Budget spends on PostgreSQL, written in batches (pg_counters.py).

A request's cost grows every budget counter of its scopes. One UPDATE per request
cost a pool checkout, its ping and a round trip on the hot path: a fifth of a
request's CPU. Spends are therefore added up here and written a moment later, in one
statement for every request that finished meanwhile. Until the batch commits, this
replica's admissions still count it (``pending``); a batch the database did not take
is kept for the next try; shutdown waits for the batch in flight and writes the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pluggably.db import DATABASE_DOWN
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.limits")
BATCH_S = 0.02  # spends of requests finishing this close together: one round trip
RETRY_S = 0.5  # after the database did not take them

Key = tuple[str, str, int]  # (scope, kind, window_start) of one budget counter
Write = Callable[[dict[Key, float]], Awaitable[None]]


class PendingSpends:
    def __init__(self, write: Write) -> None:
        self._write = write
        self._spent: dict[Key, float] = {}  # not written yet
        self._writing: dict[Key, float] = {}  # the batch being written
        self._task: asyncio.Future[None] | None = None
        self._closing = False

    def add(self, keys: list[Key], usd: float) -> None:
        for key in keys:
            self._spent[key] = self._spent.get(key, 0.0) + usd
        if self._task is None and not self._closing:
            self._task = asyncio.ensure_future(self._soon())

    def pending(self, key: Key) -> float:
        """What this replica spent on ``key`` that the database may not hold yet."""
        return self._spent.get(key, 0.0) + self._writing.get(key, 0.0)

    async def flush(self) -> None:
        """Write what is pending now (a budget's seed waits for this)."""
        spent, self._spent = self._spent, {}
        if not spent:
            return
        self._writing = spent
        try:
            await self._write(spent)
        except DATABASE_DOWN as exc:
            self._writing = {}  # back among the pending: counted once, not twice
            for key, usd in spent.items():  # kept for the next try
                self._spent[key] = self._spent.get(key, 0.0) + usd
            log.warning("budget_spend_retry", error=type(exc).__name__)
            await asyncio.sleep(RETRY_S)
        finally:
            self._writing = {}

    async def close(self) -> None:
        """At shutdown: the batch in flight is awaited, not cancelled (a cancelled
        write would lose it), then the rest is written."""
        self._closing = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _soon(self) -> None:
        try:
            if not self._closing:
                await asyncio.sleep(BATCH_S)
            await self.flush()
        finally:
            self._task = None
            if self._spent and not self._closing:  # came meanwhile, or put back
                self._task = asyncio.ensure_future(self._soon())
