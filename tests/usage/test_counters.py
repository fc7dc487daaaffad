"""The counters' contract (usage/counters.py), held by both implementations: in this
process on SQLite, shared tables on PostgreSQL. Each test runs against both through
``counters_for``, with a fixed clock (``now`` is an argument of every call)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from pluggably.db import Database, migrate
from pluggably.errors import BudgetExceeded, RateLimited
from pluggably.usage.counters import Admission, Ask, Counters
from pluggably.usage.limiter import counters_for
from pluggably.usage.limits import Budget, ScopeLimits
from pluggably.usage.memory_counters import MemoryCounters
from pluggably.usage.pg_counters import PostgresCounters

# 30 s into a minute (Retry-After of a rate: 30), 18 days and 12 h before June.
NOW = datetime(2026, 5, 13, 12, 0, 30, tzinfo=UTC)
TO_JUNE_S = int((datetime(2026, 6, 1, tzinfo=UTC) - NOW).total_seconds())
USER, TOKEN = "user:usr_1", "token:tok_1"
TTL_S = 600.0


@dataclass
class Records:
    """What the request records say each scope spent (the budgets' seed), and how often
    the counters asked."""

    spent: dict[str, float] = field(default_factory=dict)
    asked: list[tuple[str, datetime]] = field(default_factory=list)

    async def spend_since(self, scope: str, since: datetime) -> float:
        self.asked.append((scope, since))
        await asyncio.sleep(0)
        return self.spent.get(scope, 0.0)


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
async def counters(database_url: str, records: Records) -> AsyncIterator[Counters]:
    db = Database(database_url)
    await migrate.upgrade(db.engine)
    made = counters_for(db, records.spend_since, TTL_S)
    expected = PostgresCounters if db.dialect == "postgresql" else MemoryCounters
    assert isinstance(made, expected)
    yield made
    await db.dispose()


def ask(
    *limits: ScopeLimits, tokens: int = 0, now: datetime = NOW, request_id: str = "req_1"
) -> Ask:
    return Ask(request_id, limits, tokens, now)


async def test_64_concurrent_admissions_against_rpm_10_admit_exactly_10(
    counters: Counters,
) -> None:
    limit = ScopeLimits(USER, rpm=10)
    outcomes = await asyncio.gather(
        *(counters.admit(ask(limit, request_id=f"req_{n}")) for n in range(64)),
        return_exceptions=True,
    )
    admitted = [o for o in outcomes if isinstance(o, Admission)]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert (len(admitted), len(refused)) == (10, 54)
    assert sorted(a.headroom.remaining_requests or 0 for a in admitted) == list(range(10))
    for refusal in refused:
        assert refusal.retry_after == 30
        assert refusal.message == (
            "Rate limit reached: 10 requests per minute for your account; retry in 30 s."
        )
        assert refusal.headers == {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "30s",
        }


async def test_the_next_minute_admits_again(counters: Counters) -> None:
    limit = ScopeLimits(USER, rpm=1)
    await counters.admit(ask(limit))
    with pytest.raises(RateLimited):
        await counters.admit(ask(limit, now=NOW + timedelta(seconds=29)))
    admitted = await counters.admit(ask(limit, now=NOW + timedelta(seconds=30)))
    assert admitted.headroom.remaining_requests == 0


async def test_tpm_counts_the_estimate_then_the_real_usage(counters: Counters) -> None:
    limit = ScopeLimits(USER, tpm=1000)
    first = await counters.admit(ask(limit, tokens=600, request_id="req_a"))
    assert first.headroom.headers() == {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "30s",
    }
    with pytest.raises(RateLimited) as refused:
        await counters.admit(ask(limit, tokens=500, request_id="req_b"))
    assert refused.value.retry_after == 30
    assert refused.value.message == (
        "Token rate limit reached: 1000 tokens per minute for your account (600 used); "
        "retry in 30 s."
    )
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "400"

    await counters.settle(first, 100)  # it used 100, not 600
    second = await counters.admit(ask(limit, tokens=500, request_id="req_c"))
    assert second.headroom.remaining_tokens == 400
    await counters.settle(second, 900)  # more than its estimate
    with pytest.raises(RateLimited):
        await counters.admit(ask(limit, tokens=1, request_id="req_d"))


async def test_an_estimate_above_tpm_is_refused_without_retry_after(counters: Counters) -> None:
    limit = ScopeLimits(TOKEN, tpm=100)
    with pytest.raises(RateLimited) as refused:
        await counters.admit(ask(limit, tokens=101))
    assert refused.value.retry_after is None
    assert refused.value.message == (
        "This request needs about 101 tokens, more than the 100 tokens per minute this API "
        "token may use: shorten it or lower max_tokens."
    )
    # Nothing was counted: a request that fits is admitted with all 100 left before it.
    admitted = await counters.admit(ask(limit, tokens=100))
    assert admitted.headroom.remaining_tokens == 0


async def test_a_slot_is_held_until_settled_once(counters: Counters) -> None:
    limit = ScopeLimits(USER, max_concurrent=2)
    first = await counters.admit(ask(limit, request_id="req_a"))
    await counters.admit(ask(limit, request_id="req_b"))
    with pytest.raises(RateLimited) as refused:
        await counters.admit(ask(limit, request_id="req_c"))
    assert refused.value.retry_after == 1
    assert refused.value.message == (
        "Concurrency limit reached: 2 requests at once for your account; retry when one finishes."
    )
    await counters.settle(first, 0)
    await counters.settle(first, 0)  # a second settlement frees nothing more
    assert first.settled
    await counters.admit(ask(limit, request_id="req_d"))
    with pytest.raises(RateLimited):
        await counters.admit(ask(limit, request_id="req_e"))


async def test_a_slot_older_than_its_ttl_no_longer_counts(counters: Counters) -> None:
    limit = ScopeLimits(USER, max_concurrent=1)
    await counters.admit(ask(limit, request_id="req_lost"))  # never settled (a crash)
    with pytest.raises(RateLimited):
        await counters.admit(ask(limit, request_id="req_b", now=NOW + timedelta(seconds=TTL_S)))
    later = NOW + timedelta(seconds=TTL_S + 1)
    await counters.admit(ask(limit, request_id="req_c", now=later))


async def test_a_budget_is_seeded_from_the_records_and_grows_with_spend(
    counters: Counters, records: Records
) -> None:
    records.spent[USER] = 4.0
    limit = ScopeLimits(USER, budgets=(Budget(5.0, "month"),))
    await counters.spend((USER,), 10.0, NOW)  # not yet seeded: the records hold it
    await asyncio.gather(*(counters.admit(ask(limit, request_id=f"req_{n}")) for n in range(3)))
    assert set(records.asked) == {(USER, datetime(2026, 5, 1, tzinfo=UTC))}

    await counters.spend((USER, TOKEN), 0.75, NOW)
    await counters.admit(ask(limit, request_id="req_x"))  # 4.75 of 5
    await counters.spend((USER,), 0.25, NOW)
    with pytest.raises(BudgetExceeded) as refused:
        await counters.admit(ask(limit, request_id="req_y"))
    assert refused.value.retry_after == TO_JUNE_S
    assert refused.value.message == (
        "The monthly budget of $5 for your account is used up ($5.0000 spent); "
        "it resets at 2026-06-01T00:00:00+00:00."
    )
    # June is a new period, seeded again (the records hold nothing since June 1).
    june = datetime(2026, 6, 1, 0, 0, 5, tzinfo=UTC)
    records.spent[USER] = 0.0
    await counters.admit(ask(limit, request_id="req_z", now=june))
    assert records.asked[-1] == (USER, datetime(2026, 6, 1, tzinfo=UTC))


async def test_spend_counts_only_the_period_holding_now(
    counters: Counters, records: Records
) -> None:
    limit = ScopeLimits(USER, budgets=(Budget(1.0, "day"), Budget(3.0, "week")))
    await counters.admit(ask(limit))
    await counters.spend((USER,), 0.5, NOW)
    await counters.spend((USER,), 5.0, NOW - timedelta(days=7))  # last week's periods
    await counters.admit(ask(limit, request_id="req_b"))
    await counters.spend((USER,), 0.5, NOW)
    with pytest.raises(BudgetExceeded) as refused:
        await counters.admit(ask(limit, request_id="req_c"))
    assert refused.value.message.startswith("The daily budget of $1 for your account")
    assert refused.value.retry_after == 12 * 3600 - 30


async def test_a_refusal_in_one_scope_counts_nothing_in_the_other(counters: Counters) -> None:
    user, token = ScopeLimits(USER, rpm=3, tpm=50), ScopeLimits(TOKEN, rpm=1)
    both = await counters.admit(ask(user, token, tokens=10, request_id="req_a"))
    # The binding scope (least remaining) is the token's.
    assert (both.headroom.limit_requests, both.headroom.remaining_requests) == (1, 0)
    assert (both.headroom.limit_tokens, both.headroom.remaining_tokens) == (50, 40)
    with pytest.raises(RateLimited) as refused:
        await counters.admit(ask(user, token, tokens=10, request_id="req_b"))
    assert refused.value.message.endswith("for this API token; retry in 30 s.")
    # The user counted one request and 10 tokens, not two and 20.
    alone = await counters.admit(ask(user, tokens=40, request_id="req_c"))
    assert (alone.headroom.remaining_requests, alone.headroom.remaining_tokens) == (1, 0)


async def test_a_sweep_keeps_the_counts_that_still_matter(counters: Counters) -> None:
    limit = ScopeLimits(USER, rpm=1, max_concurrent=1, budgets=(Budget(1.0, "day"),))
    held = await counters.admit(ask(limit))
    await counters.spend((USER,), 1.0, NOW)
    await counters.sweep(NOW)
    with pytest.raises(RateLimited):  # this minute's request and the slot still count
        await counters.admit(ask(limit, request_id="req_b"))
    await counters.settle(held, 0)
    await counters.sweep(NOW + timedelta(minutes=3))
    with pytest.raises(BudgetExceeded):  # today's budget still counts
        await counters.admit(ask(limit, request_id="req_c", now=NOW + timedelta(minutes=3)))
