"""Counters in this process (usage/counters.py): for a server on SQLite, which one
process serves. Budgets are seeded from the request records, so a restart keeps
them; rates start over with the process (a minute's window at most)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

from pluggably.errors import BudgetExceeded, RateLimited
from pluggably.usage.counters import (
    SLOT_TTL_S,
    Admission,
    Ask,
    Headroom,
    SpendSince,
    minute_of,
)
from pluggably.usage.limits import Budget, Period, ScopeLimits, period_end, period_start

SpendKey = tuple[Period, float]  # (period, its start as a timestamp)


@dataclass(slots=True)
class _Scope:
    minute: int = -1
    requests: int = 0
    tokens: int = 0
    slots: dict[str, float] = field(default_factory=dict)  # request id -> taken (monotonic)
    spend: dict[SpendKey, float] = field(default_factory=dict)

    def roll(self, minute: int) -> None:
        if minute != self.minute:
            self.minute, self.requests, self.tokens = minute, 0, 0

    def live_slots(self, now: float, ttl_s: float) -> int:
        stale = [rid for rid, taken in self.slots.items() if now - taken > ttl_s]
        for rid in stale:
            del self.slots[rid]
        return len(self.slots)


def describe(scope: str) -> str:
    return "this API token" if scope.startswith("token:") else "your account"


def seconds_to_next_minute(now: datetime) -> float:
    return 60.0 - (now.timestamp() % 60.0)


def headroom(limits: tuple[ScopeLimits, ...], state: dict[str, _Scope], now: datetime) -> Headroom:
    """The binding scope's rpm and tpm, and what remains of each."""
    requests: tuple[int, int] | None = None
    tokens: tuple[int, int] | None = None
    for limit in limits:
        counted = state[limit.scope]
        if limit.rpm is not None:
            left = limit.rpm - counted.requests
            if requests is None or left < requests[1]:
                requests = (limit.rpm, left)
        if limit.tpm is not None:
            left = limit.tpm - counted.tokens
            if tokens is None or left < tokens[1]:
                tokens = (limit.tpm, left)
    return Headroom(
        limit_requests=requests[0] if requests else None,
        remaining_requests=requests[1] if requests else None,
        limit_tokens=tokens[0] if tokens else None,
        remaining_tokens=tokens[1] if tokens else None,
        reset_s=seconds_to_next_minute(now),
    )


class MemoryCounters:
    def __init__(
        self,
        spend_since: SpendSince,
        *,
        slot_ttl_s: float = SLOT_TTL_S,
        clock: object = time.monotonic,
    ) -> None:
        self.spend_since = spend_since
        self.slot_ttl_s = slot_ttl_s
        self.clock = clock
        self._scopes: dict[str, _Scope] = {}
        self._seeding: dict[tuple[str, SpendKey], asyncio.Future[None]] = {}

    def _state(self, scope: str) -> _Scope:
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = _Scope()
        return found

    async def _seed(self, scope: str, budget: Budget, now: datetime) -> None:
        """The period's spend so far, read once from the request records."""
        start = period_start(budget.period, now)
        key: SpendKey = (budget.period, start.timestamp())
        while key not in self._state(scope).spend:
            pending = self._seeding.get((scope, key))
            if pending is not None:
                await asyncio.shield(pending)
                continue
            future = self._seeding[(scope, key)] = asyncio.get_running_loop().create_future()
            try:
                spent = await self.spend_since(scope, start)
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
        monotonic = self.clock()  # type: ignore[operator]
        state = {limit.scope: self._state(limit.scope) for limit in ask.limits}
        for limit in ask.limits:
            counted = state[limit.scope]
            counted.roll(minute)
            self._check(limit, counted, ask, monotonic, state)
        for limit in ask.limits:
            counted = state[limit.scope]
            counted.requests += 1
            counted.tokens += ask.tokens
            if limit.max_concurrent is not None:
                counted.slots[ask.request_id] = monotonic
        return Admission(
            ask.request_id, ask.limits, minute, ask.tokens, headroom(ask.limits, state, ask.now)
        )

    def _check(
        self,
        limit: ScopeLimits,
        counted: _Scope,
        ask: Ask,
        monotonic: float,
        state: dict[str, _Scope],
    ) -> None:
        who = describe(limit.scope)
        wait = math.ceil(seconds_to_next_minute(ask.now))
        headers = headroom(ask.limits, state, ask.now).headers()
        if limit.rpm is not None and counted.requests >= limit.rpm:
            raise RateLimited(
                f"Rate limit reached: {limit.rpm} requests per minute for {who}; "
                f"retry in {wait} s.",
                retry_after=wait,
                headers=headers,
            )
        if limit.tpm is not None:
            if ask.tokens > limit.tpm:
                raise RateLimited(
                    f"This request needs about {ask.tokens} tokens, more than the "
                    f"{limit.tpm} tokens per minute {who} may use: shorten it or lower "
                    "max_tokens.",
                    headers=headers,
                )
            if counted.tokens + ask.tokens > limit.tpm:
                raise RateLimited(
                    f"Token rate limit reached: {limit.tpm} tokens per minute for {who} "
                    f"({counted.tokens} used); retry in {wait} s.",
                    retry_after=wait,
                    headers=headers,
                )
        live = counted.live_slots(monotonic, self.slot_ttl_s)
        if limit.max_concurrent is not None and live >= limit.max_concurrent:
            raise RateLimited(
                f"Concurrency limit reached: {limit.max_concurrent} requests at once "
                f"for {who}; retry when one finishes.",
                retry_after=1,
                headers=headers,
            )
        for budget in limit.budgets:
            key: SpendKey = (budget.period, period_start(budget.period, ask.now).timestamp())
            spent = counted.spend.get(key, 0.0)
            if spent >= budget.usd:
                reset = period_end(budget.period, ask.now)
                wait_s = max(math.ceil((reset - ask.now).total_seconds()), 1)
                raise BudgetExceeded(
                    f"The {budget.period}ly budget of ${budget.usd:g} for {who} is used up "
                    f"(${spent:.4f} spent); it resets at {reset.isoformat()}.",
                    retry_after=wait_s,
                    headers=headers,
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
                period, start = key
                if period_start(period, now).timestamp() == start:
                    counted.spend[key] += cost_usd

    async def sweep(self, now: datetime) -> None:
        minute = minute_of(now)
        monotonic = self.clock()  # type: ignore[operator]
        for scope, counted in list(self._scopes.items()):
            counted.live_slots(monotonic, self.slot_ttl_s)
            for key in [k for k in counted.spend if period_start(k[0], now).timestamp() != k[1]]:
                del counted.spend[key]
            if counted.minute < minute and not counted.slots and not counted.spend:
                del self._scopes[scope]
