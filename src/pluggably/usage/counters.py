"""Counting what limits bound, exactly: the contract, with two implementations.

- ``MemoryCounters`` (usage/memory_counters.py): one process (the SQLite default; a
  SQLite database serves one process). The check and the count happen with no await
  between them, so concurrent requests cannot both take the last unit.
- ``PostgresCounters`` (usage/pg_counters.py): every replica on one PostgreSQL shares
  the counts (tables ``limit_counters`` and ``limit_slots``). One transaction per
  admission takes a transaction-level advisory lock per scope, reads, checks and
  writes, so two replicas cannot over-admit either.

Windows: rpm and tpm count per wall-clock minute (UTC), so every replica agrees on
the window; a budget counts per period (day, week from Monday, month; UTC) and is
seeded from the request records the first time a period is checked. A concurrency
slot is held from admission to settlement; a slot older than ``slot_ttl_s`` (a crash
left it) no longer counts.

Both implementations gather the same plain numbers per scope (``Counted``) and refuse
through one ``check``: the same order (rpm, tpm, concurrency, budgets; scope by scope),
messages, ``Retry-After`` and headers whichever counts."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pluggably.errors import BudgetExceeded, GatewayError, RateLimited
from pluggably.usage.limits import Period, ScopeLimits, period_end

# The spend recorded in request records for a scope since a time: ``(scope, since)``.
SpendSince = Callable[[str, datetime], Awaitable[float]]
SLOT_TTL_S = 3600.0


def minute_of(now: datetime) -> int:
    """The rpm/tpm window: whole minutes since the epoch."""
    return int(now.timestamp() // 60)


def seconds_to_next_minute(now: datetime) -> float:
    return 60.0 - (now.timestamp() % 60.0)


@dataclass(frozen=True, slots=True)
class Ask:
    """One request asking to be admitted against every scope that limits it."""

    request_id: str
    limits: tuple[ScopeLimits, ...]  # the scopes with at least one limit
    tokens: int  # the estimate counted against tpm
    now: datetime


@dataclass(frozen=True, slots=True)
class Headroom:
    """What OpenAI's ``x-ratelimit-*`` headers report: the binding (least remaining)
    scope's limit and what remains of it after this request, and seconds to reset."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_s: float = 0.0

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        reset = f"{max(self.reset_s, 0.0):.3f}".rstrip("0").rstrip(".") + "s"
        if self.limit_requests is not None:
            out["x-ratelimit-limit-requests"] = str(self.limit_requests)
            out["x-ratelimit-remaining-requests"] = str(max(self.remaining_requests or 0, 0))
            out["x-ratelimit-reset-requests"] = reset
        if self.limit_tokens is not None:
            out["x-ratelimit-limit-tokens"] = str(self.limit_tokens)
            out["x-ratelimit-remaining-tokens"] = str(max(self.remaining_tokens or 0, 0))
            out["x-ratelimit-reset-tokens"] = reset
        return out


@dataclass(slots=True)
class Admission:
    """A request admitted: what it holds until it is settled (once)."""

    request_id: str
    limits: tuple[ScopeLimits, ...]
    minute: int  # the window rpm/tpm were counted in
    tokens: int  # the estimate counted against tpm
    headroom: Headroom = field(default_factory=Headroom)
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Counted:
    """What one scope has used, as a check sees it: this minute's requests and tokens,
    its live concurrency slots, and the spend of each budget period holding now."""

    requests: int = 0
    tokens: int = 0
    slots: int = 0
    spent: Mapping[Period, float] = field(default_factory=dict)

    def admitting(self, tokens: int) -> Counted:
        """The counts once a request with this estimate is admitted."""
        return Counted(self.requests + 1, self.tokens + tokens, self.slots + 1, self.spent)


def headroom(
    limits: tuple[ScopeLimits, ...], counted: Mapping[str, Counted], now: datetime
) -> Headroom:
    """The binding (least remaining) scope's rpm and tpm, and what remains of each."""
    requests: tuple[int, int] | None = None
    tokens: tuple[int, int] | None = None
    for limit in limits:
        used = counted[limit.scope]
        if limit.rpm is not None:
            left = limit.rpm - used.requests
            if requests is None or left < requests[1]:
                requests = (limit.rpm, left)
        if limit.tpm is not None:
            left = limit.tpm - used.tokens
            if tokens is None or left < tokens[1]:
                tokens = (limit.tpm, left)
    return Headroom(
        limit_requests=requests[0] if requests else None,
        remaining_requests=requests[1] if requests else None,
        limit_tokens=tokens[0] if tokens else None,
        remaining_tokens=tokens[1] if tokens else None,
        reset_s=seconds_to_next_minute(now),
    )


def check(ask: Ask, counted: Mapping[str, Counted]) -> None:
    """Raise the first limit ``ask`` would exceed (``counted``: every scope of ``ask``
    before it is counted), with the headers as they stand; return when all allow it."""
    for limit in ask.limits:
        refusal = _refusal(limit, counted[limit.scope], ask)
        if refusal is not None:
            refusal.headers.update(headroom(ask.limits, counted, ask.now).headers())
            raise refusal


_ADJECTIVE: dict[Period, str] = {"day": "daily", "week": "weekly", "month": "monthly"}


def _describe(scope: str) -> str:
    return "this API token" if scope.startswith("token:") else "your account"


def _refusal(limit: ScopeLimits, used: Counted, ask: Ask) -> GatewayError | None:
    who = _describe(limit.scope)
    wait = math.ceil(seconds_to_next_minute(ask.now))
    if limit.rpm is not None and used.requests >= limit.rpm:
        return RateLimited(
            f"Rate limit reached: {limit.rpm} requests per minute for {who}; retry in {wait} s.",
            retry_after=wait,
        )
    if limit.tpm is not None and ask.tokens > limit.tpm:
        return RateLimited(
            f"This request needs about {ask.tokens} tokens, more than the {limit.tpm} tokens "
            f"per minute {who} may use: shorten it or lower max_tokens."
        )
    if limit.tpm is not None and used.tokens + ask.tokens > limit.tpm:
        return RateLimited(
            f"Token rate limit reached: {limit.tpm} tokens per minute for {who} "
            f"({used.tokens} used); retry in {wait} s.",
            retry_after=wait,
        )
    if limit.max_concurrent is not None and used.slots >= limit.max_concurrent:
        return RateLimited(
            f"Concurrency limit reached: {limit.max_concurrent} requests at once for {who}; "
            "retry when one finishes.",
            retry_after=1,
        )
    for budget in limit.budgets:
        spent = used.spent.get(budget.period, 0.0)
        if spent >= budget.usd:
            reset = period_end(budget.period, ask.now)
            return BudgetExceeded(
                f"The {_ADJECTIVE[budget.period]} budget of ${budget.usd:g} for {who} is used up "
                f"(${spent:.4f} spent); it resets at {reset.isoformat()}.",
                retry_after=max(math.ceil((reset - ask.now).total_seconds()), 1),
            )
    return None


class Counters(Protocol):
    async def admit(self, ask: Ask) -> Admission:
        """Count the request against every scope, or none of them: raises
        ``RateLimited`` (rpm, tpm, max_concurrent) or ``BudgetExceeded``, each with
        ``retry_after`` where waiting helps and the ``x-ratelimit-*`` headers."""
        ...

    async def settle(self, admission: Admission, tokens: int) -> None:
        """The request finished with ``tokens`` (prompt + completion) used: tpm moves from
        the estimate to that, and the concurrency slots go back. Idempotent."""
        ...

    async def spend(self, scopes: tuple[str, ...], cost_usd: float, now: datetime) -> None:
        """A request cost ``cost_usd``: every budget counter of these scopes for the
        periods holding ``now`` grows by it (counters not yet seeded stay unseeded: their
        seed reads the request records, which hold this cost)."""
        ...

    async def sweep(self, now: datetime) -> None:
        """Forget windows, periods and slots that can no longer matter."""
        ...

    async def close(self) -> None:
        """Write what is still pending (at shutdown)."""
        ...
