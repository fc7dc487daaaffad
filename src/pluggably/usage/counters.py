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
left it) no longer counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pluggably.usage.limits import ScopeLimits

# The spend recorded in request records for a scope since a time: ``(scope, since)``.
SpendSince = Callable[[str, datetime], Awaitable[float]]
SLOT_TTL_S = 3600.0


def minute_of(now: datetime) -> int:
    """The rpm/tpm window: whole minutes since the epoch."""
    return int(now.timestamp() // 60)


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
