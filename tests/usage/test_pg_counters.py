"""The shared counters on PostgreSQL (usage/pg_counters.py): two replicas (two engines
on one database) count as one, and the sweep forgets what can no longer matter."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from pluggably.db import Database, migrate
from pluggably.errors import RateLimited
from pluggably.usage.counters import Admission, Ask, minute_of
from pluggably.usage.limits import Budget, ScopeLimits
from pluggably.usage.models import LimitCounter, LimitSlot
from pluggably.usage.pg_counters import PostgresCounters
from tests.conftest import PG_URL_ENV

pytestmark = [
    pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason=f"{PG_URL_ENV} not set"),
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

NOW = datetime(2026, 5, 13, 12, 0, 30, tzinfo=UTC)
USER = "user:usr_1"
TTL_S = 600.0


async def spent_before(scope: str, since: datetime) -> float:
    return 1.0


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database(database_url), Database(database_url)
    await migrate.upgrade(first.engine)
    yield first, second
    await first.dispose()
    await second.dispose()


def counters(db: Database) -> PostgresCounters:
    return PostgresCounters(db, spent_before, slot_ttl_s=TTL_S)


def ask(limit: ScopeLimits, request_id: str, now: datetime = NOW, tokens: int = 0) -> Ask:
    return Ask(request_id, (limit,), tokens, now)


async def rows(db: Database) -> tuple[set[tuple[str, str, int, float]], set[tuple[str, str]]]:
    """Every counter (scope, kind, window_start, value) and slot (request id, scope)."""
    async with db.session() as session:
        counted = (await session.scalars(select(LimitCounter))).all()
        slots = (await session.scalars(select(LimitSlot))).all()
    return (
        {(row.scope, row.kind, row.window_start, row.value) for row in counted},
        {(slot.request_id, slot.scope) for slot in slots},
    )


async def test_two_replicas_admit_exactly_rpm_between_them(
    replicas: tuple[Database, Database],
) -> None:
    a, b = counters(replicas[0]), counters(replicas[1])
    limit = ScopeLimits(USER, rpm=10)
    outcomes = await asyncio.gather(
        *((a if n % 2 else b).admit(ask(limit, f"req_{n}")) for n in range(64)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, Admission) for o in outcomes) == 10
    assert sum(isinstance(o, RateLimited) for o in outcomes) == 54
    counted, _ = await rows(replicas[0])
    assert counted == {(USER, "rpm", minute_of(NOW), 10.0)}


async def test_two_replicas_share_the_concurrency_slots(
    replicas: tuple[Database, Database],
) -> None:
    a, b = counters(replicas[0]), counters(replicas[1])
    limit = ScopeLimits(USER, max_concurrent=3, tpm=10_000)
    outcomes = await asyncio.gather(
        *((a if n % 2 else b).admit(ask(limit, f"req_{n}", tokens=10)) for n in range(20)),
        return_exceptions=True,
    )
    held = [o for o in outcomes if isinstance(o, Admission)]
    assert len(held) == 3
    _, slots = await rows(replicas[0])
    assert slots == {(admission.request_id, USER) for admission in held}

    await a.settle(held[0], 4)  # whichever replica admitted it: the slot is the table's
    await b.admit(ask(limit, "req_next", tokens=10))
    with pytest.raises(RateLimited):
        await a.admit(ask(limit, "req_over", tokens=10))
    counted, _ = await rows(replicas[1])
    assert {(kind, value) for _, kind, _, value in counted} == {("tpm", 34.0)}


async def test_replicas_seed_a_budget_once_and_add_every_spend(
    replicas: tuple[Database, Database],
) -> None:
    a, b = counters(replicas[0]), counters(replicas[1])
    limit = ScopeLimits(USER, budgets=(Budget(5.0, "week"),))
    await asyncio.gather(*((a if n % 2 else b).admit(ask(limit, f"req_{n}")) for n in range(10)))
    await asyncio.gather(a.spend((USER,), 0.5, NOW), b.spend((USER,), 0.25, NOW))
    await asyncio.gather(a.spend((USER,), 0.5, NOW), b.spend((USER,), 0.25, NOW))
    # Each replica writes its pending spends in one statement a moment later.
    await asyncio.sleep(0.1)
    counted, _ = await rows(replicas[0])
    monday = int(datetime(2026, 5, 11, tzinfo=UTC).timestamp())
    assert counted == {(USER, "budget_week", monday, 2.5)}


async def test_a_sweep_removes_old_windows_ended_periods_and_stale_slots(
    replicas: tuple[Database, Database],
) -> None:
    db = replicas[0]
    shared = counters(db)
    limit = ScopeLimits(USER, rpm=100, tpm=1000, max_concurrent=5, budgets=(Budget(9.0, "day"),))
    yesterday = NOW - timedelta(days=1)
    await shared.admit(ask(limit, "req_old", now=yesterday))
    await shared.admit(ask(limit, "req_last_minute", now=NOW - timedelta(minutes=1)))
    await shared.admit(ask(limit, "req_now", now=NOW))

    await shared.sweep(NOW)
    counted, slots = await rows(db)
    minute = minute_of(NOW)
    today = int(datetime(2026, 5, 13, tzinfo=UTC).timestamp())
    assert {(kind, window) for _, kind, window, _ in counted} == {
        ("rpm", minute - 1),
        ("tpm", minute - 1),
        ("rpm", minute),
        ("tpm", minute),
        ("budget_day", today),
    }
    assert slots == {("req_last_minute", USER), ("req_now", USER)}

    await shared.sweep(NOW + timedelta(days=1))
    assert await rows(db) == (set(), set())


async def test_a_burst_from_one_caller_leaves_the_pool_to_others(database_url: str) -> None:
    """Another replica holds the scope's lock: this replica's admissions of that scope
    wait in turn, holding one pool connection, not all of them."""
    db = Database(database_url, pool_size=2)  # 2 + 2 overflow connections
    await migrate.upgrade(db.engine)
    shared = counters(db)
    limit = ScopeLimits(USER, rpm=100)
    other_replica = await db.engine.connect()
    try:
        transaction = await other_replica.begin()
        await other_replica.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:scope, 0))"), {"scope": USER}
        )
        burst = [asyncio.ensure_future(shared.admit(ask(limit, f"req_{n}"))) for n in range(8)]
        await asyncio.sleep(0.2)
        async with asyncio.timeout(5), db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert not any(task.done() for task in burst)
        await transaction.commit()
        assert len(await asyncio.gather(*burst)) == 8
    finally:
        await other_replica.close()
        await db.dispose()


async def test_a_settlement_completes_when_its_request_is_cancelled(
    replicas: tuple[Database, Database],
) -> None:
    shared = counters(replicas[0])
    admission = await shared.admit(ask(ScopeLimits(USER, max_concurrent=1), "req_a"))
    settling = asyncio.ensure_future(shared.settle(admission, 0))
    await asyncio.sleep(0)  # it started: the request's task is cancelled mid-write
    settling.cancel()
    async with asyncio.timeout(5):
        while (await rows(replicas[0]))[1]:
            await asyncio.sleep(0.01)
    await shared.admit(ask(ScopeLimits(USER, max_concurrent=1), "req_b"))
