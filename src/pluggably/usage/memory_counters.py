"""Counters in this process (usage/counters.py): for a server on SQLite, which one
process serves. Budgets are seeded from the request records, so a restart keeps
them; rates start over with the process (a minute's window at most)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache

from pluggably.usage.counters import (
    SLOT_TTL_S,
    Admission,
    Ask,
    Counted,
    SpendSince,
    check,
    headroom,
    minute_of,
)
from pluggably.usage.limits import Budget, Period, period_start

SpendKey = tuple[Period, float]  # (period, its start as a timestamp)


def spend_key(period: Period, now: datetime) -> SpendKey:
    return (period, _start_timestamp(period, now.astimezone(UTC).date()))


@lru_cache(maxsize=64)
def _start_timestamp(period: Period, day: date) -> float:
    return period_start(period, datetime(day.year, day.month, day.day, tzinfo=UTC)).timestamp()


@dataclass(slots=True)
class _Scope:
    minute: int = -1
    requests: int = 0
    tokens: int = 0
    slots: dict[str, float] = field(default_factory=dict)  # request id -> taken (timestamp)
    spend: dict[SpendKey, float] = field(default_factory=dict)

    def roll(self, minute: int) -> None:
        if minute != self.minute:
            self.minute, self.requests, self.tokens = minute, 0, 0

    def live_slots(self, now: float, ttl_s: float) -> int:
        stale = [rid for rid, taken in self.slots.items() if now - taken > ttl_s]
        for rid in stale:
            del self.slots[rid]
        return len(self.slots)

    def counted(self, now: datetime, ttl_s: float) -> Counted:
        """The counts a check reads (spend: the periods holding ``now``)."""
        spent = {
            key[0]: value for key, value in self.spend.items() if spend_key(key[0], now) == key
        }
        return Counted(self.requests, self.tokens, self.live_slots(now.timestamp(), ttl_s), spent)


class MemoryCounters:
    def __init__(self, spend_since: SpendSince, *, slot_ttl_s: float = SLOT_TTL_S) -> None:
        self.spend_since = spend_since
        self.slot_ttl_s = slot_ttl_s
        # Every scope's counts; read and changed only between awaits, so an admission's
        # check and count are one step no other request can come between.
        self._scopes: dict[str, _Scope] = {}
        # Seeds being read (scope, period): a second admission waits for the first's.
        self._seeding: dict[tuple[str, SpendKey], asyncio.Future[None]] = {}

    def _state(self, scope: str) -> _Scope:
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = _Scope()
        return found

    async def _seed(self, scope: str, budget: Budget, now: datetime) -> None:
        """The period's spend so far, read once from the request records."""
        key = spend_key(budget.period, now)
        while key not in self._state(scope).spend:
            pending = self._seeding.get((scope, key))
            if pending is not None:
                await asyncio.shield(pending)
                continue
            future = self._seeding[(scope, key)] = asyncio.get_running_loop().create_future()
            try:
                spent = await self.spend_since(scope, period_start(budget.period, now))
                self._state(scope).spend.setdefault(key, spent)
                future.set_result(None)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()
                raise
            finally:
                del self._seeding[(scope, key)]

    async def admit(self, ask: Ask) -> Admission:
        for limit in ask.limits:
            for budget in limit.budgets:
                await self._seed(limit.scope, budget, ask.now)
        # From here to the return, no await: the check and the count are one step.
        minute = minute_of(ask.now)
        state = {limit.scope: self._state(limit.scope) for limit in ask.limits}
        for counted in state.values():
            counted.roll(minute)
        before = {
            scope: counted.counted(ask.now, self.slot_ttl_s) for scope, counted in state.items()
        }
        check(ask, before)
        for limit in ask.limits:
            counted = state[limit.scope]
            counted.requests += 1
            counted.tokens += ask.tokens
            if limit.max_concurrent is not None:
                counted.slots[ask.request_id] = ask.now.timestamp()
        after = {scope: used.admitting(ask.tokens) for scope, used in before.items()}
        return Admission(
            ask.request_id, ask.limits, minute, ask.tokens, headroom(ask.limits, after, ask.now)
        )

    async def settle(self, admission: Admission, tokens: int) -> None:
        if admission.settled:
            return
        admission.settled = True
        for limit in admission.limits:
            counted = self._scopes.get(limit.scope)
            if counted is None:
                continue
            if counted.minute == admission.minute:
                counted.tokens += tokens - admission.tokens
            counted.slots.pop(admission.request_id, None)

    async def spend(self, scopes: tuple[str, ...], cost_usd: float, now: datetime) -> None:
        for scope in scopes:
            counted = self._scopes.get(scope)
            if counted is None:
                continue
            for key in counted.spend:
                if spend_key(key[0], now) == key:
                    counted.spend[key] += cost_usd

    async def close(self) -> None:
        """Nothing is pending: the counts are this process's memory."""

    async def sweep(self, now: datetime) -> None:
        minute = minute_of(now)
        for scope, counted in list(self._scopes.items()):
            counted.live_slots(now.timestamp(), self.slot_ttl_s)
            for key in [key for key in counted.spend if spend_key(key[0], now) != key]:
                del counted.spend[key]
            if counted.minute < minute and not counted.slots and not counted.spend:
                del self._scopes[scope]
