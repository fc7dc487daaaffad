"""Counters every replica on one PostgreSQL shares (usage/counters.py), in the tables
``limit_counters`` and ``limit_slots``.

An admission is one transaction: a transaction-level advisory lock per scope, taken in
sorted order (two admissions never hold one each and wait for the other's), then one
read of the scopes' counts, the shared ``check``, and one write. A commit is visible
before its locks are released, so the next admission of a scope, on any replica,
reads every count before it: no two admissions can both take the last unit. In one
process, admissions of a scope take turns before that (``_Turns``), so those waiting
hold no pool connection.

Settlement, spend and the sweep only change counts, one statement each, outside any
transaction of their own: they need no lock. A settlement landing between an
admission's read and write makes that admission stricter (it read more tokens); a
spend landing there counts from the next admission on.

A budget row missing for its period is seeded from the request records. The seed is
read between transactions (no advisory lock held for other replicas to wait on, and an
admission never needs two pool connections at once), then inserted under the lock
unless another admission inserted it first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Float,
    String,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

from pluggably.db import Database
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
from pluggably.usage.limits import Period, period_start
from pluggably.usage.models import LimitCounter, LimitSlot
from pluggably.usage.pending_spend import PendingSpends

PERIODS: tuple[Period, ...] = ("day", "week", "month")
RATE_KINDS = ("rpm", "tpm")
SLOTS = "slots"  # the read's name for a scope's live slot count
Found = dict[tuple[str, str], float]  # (scope, kind) -> value, as one read returns them


def budget_kind(period: Period) -> str:
    return f"budget_{period}"


def window_of(period: Period, now: datetime) -> int:
    """A budget row's ``window_start``: its period's start, in seconds since the epoch."""
    return int(period_start(period, now).timestamp())


@dataclass(frozen=True, slots=True)
class _Seed:
    """A budget row an admission found missing: read from the records, then inserted."""

    scope: str
    period: Period
    start: datetime


class _Turns:
    """Admissions of one scope in this process go to PostgreSQL one at a time; the others
    wait here. Waiting on the advisory lock instead would hold a pool connection each: a
    burst from one caller would take the whole pool from every other request."""

    def __init__(self) -> None:
        # scope -> (its lock, admissions holding or waiting for it); gone at zero.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def taking(self, scopes: list[str]) -> AsyncIterator[None]:
        """Hold every scope's turn; ``scopes`` sorted, as the advisory locks are."""
        locks = [self._join(scope) for scope in scopes]
        held = 0
        try:
            for lock in locks:
                await lock.acquire()
                held += 1
            yield
        finally:
            for lock in locks[:held]:
                lock.release()
            for scope in scopes:
                self._leave(scope)

    def _join(self, scope: str) -> asyncio.Lock:
        lock, users = self._locks.get(scope) or (asyncio.Lock(), 0)
        self._locks[scope] = (lock, users + 1)
        return lock

    def _leave(self, scope: str) -> None:
        lock, users = self._locks[scope]
        if users == 1:
            del self._locks[scope]
        else:
            self._locks[scope] = (lock, users - 1)


class PostgresCounters:
    def __init__(
        self, db: Database, spend_since: SpendSince, *, slot_ttl_s: float = SLOT_TTL_S
    ) -> None:
        self.db = db
        self.spend_since = spend_since
        self.slot_ttl_s = slot_ttl_s
        # The same pool without BEGIN/COMMIT: statements that stand alone cost one trip.
        self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._turns = _Turns()
        self._spends = PendingSpends(self._write_spends)

    async def admit(self, ask: Ask) -> Admission:
        async with self._turns.taking(sorted(limit.scope for limit in ask.limits)):
            return await self._admit(ask)

    async def _admit(self, ask: Ask) -> Admission:
        seeds: dict[_Seed, float] = {}
        while True:
            async with self.db.engine.begin() as conn:
                await _lock(conn, sorted(limit.scope for limit in ask.limits))
                if seeds:
                    await conn.execute(_seed_rows(seeds))
                found = await self._read(conn, ask)
                missing = _missing(ask, found)
                if not missing:
                    return await _count(conn, ask, _counted(ask, found))
            # Seeds are read after the transaction: no lock or connection held meanwhile.
            await self._spends.flush()  # pending spends land before the seed reads the records
            seeds = {seed: await self.spend_since(seed.scope, seed.start) for seed in missing}

    async def _read(self, conn: AsyncConnection, ask: Ask) -> Found:
        """This minute's rates, the periods' budgets and the live slots, in one query."""
        minute = minute_of(ask.now)
        keys = [
            (limit.scope, kind, minute)
            for limit in ask.limits
            for kind, limited in (("rpm", limit.rpm), ("tpm", limit.tpm))
            if limited is not None
        ]
        keys += [
            (limit.scope, budget_kind(b.period), window_of(b.period, ask.now))
            for limit in ask.limits
            for b in limit.budgets
        ]
        columns = (LimitCounter.scope, LimitCounter.kind, LimitCounter.window_start)
        queries = []
        if keys:
            counters = select(LimitCounter.scope, LimitCounter.kind, LimitCounter.value)
            queries.append(counters.where(tuple_(*columns).in_(keys)))
        concurrent = [limit.scope for limit in ask.limits if limit.max_concurrent is not None]
        if concurrent:
            live = LimitSlot.taken_at >= ask.now - timedelta(seconds=self.slot_ttl_s)
            slots = select(LimitSlot.scope, literal(SLOTS), func.count().cast(Float))
            queries.append(
                slots.where(LimitSlot.scope.in_(concurrent), live).group_by(LimitSlot.scope)
            )
        if not queries:
            return {}
        query = queries[0] if len(queries) == 1 else union_all(*queries)
        rows = (await conn.execute(query)).all()
        found = {(scope, kind): float(value) for scope, kind, value in rows}
        for key in keys:  # this replica's spends not written (or committed) yet count too
            pending = self._spends.pending(key)
            if pending and key[:2] in found:
                found[key[:2]] += pending
        return found

    async def settle(self, admission: Admission, tokens: int) -> None:
        if admission.settled:
            return
        admission.settled = True
        statements = (_tokens_back(admission, tokens), _slots_back(admission))
        if any(statement is not None for statement in statements):
            # Done even when the request's task is cancelled: a slot left behind would
            # count against the caller until its TTL.
            await asyncio.shield(self._write(*statements))

    async def spend(self, scopes: tuple[str, ...], cost_usd: float, now: datetime) -> None:
        """Added to the pending spends, written in a batch a moment later
        (pending_spend.py); this replica's admissions count them meanwhile."""
        if scopes and cost_usd:
            keys = [(s, budget_kind(p), window_of(p, now)) for s in scopes for p in PERIODS]
            self._spends.add(keys, cost_usd)

    async def close(self) -> None:
        await self._spends.close()

    async def _write_spends(self, spent: dict[tuple[str, str, int], float]) -> None:
        rows = [
            {"b_scope": scope, "b_kind": kind, "b_window": window, "b_usd": usd}
            for (scope, kind, window), usd in spent.items()
        ]
        async with self._autocommit.connect() as conn:
            await conn.execute(_GROW, rows)

    async def sweep(self, now: datetime) -> None:
        """Rates of minutes before the last (a late settlement may still move the last
        one's tpm), budgets of periods that ended, slots past their TTL."""
        rates = and_(
            LimitCounter.kind.in_(RATE_KINDS), LimitCounter.window_start < minute_of(now) - 1
        )
        budgets = [
            and_(LimitCounter.kind == budget_kind(p), LimitCounter.window_start < window_of(p, now))
            for p in PERIODS
        ]
        stale = LimitSlot.taken_at < now - timedelta(seconds=self.slot_ttl_s)
        await self._write(
            delete(LimitCounter).where(or_(rates, *budgets)), delete(LimitSlot).where(stale)
        )

    async def _write(self, *statements: UpdateBase | None) -> None:
        async with self._autocommit.connect() as conn:
            await _run(conn, *statements)


# One budget row grows by one request batch's spend (executed for many rows at once).
_GROW = (
    update(LimitCounter)
    .where(
        LimitCounter.scope == bindparam("b_scope"),
        LimitCounter.kind == bindparam("b_kind"),
        LimitCounter.window_start == bindparam("b_window"),
    )
    .values(value=LimitCounter.value + bindparam("b_usd"))
)


def _tokens_back(admission: Admission, tokens: int) -> UpdateBase | None:
    """tpm of the admission's minute moves from its estimate to what it used."""
    moved = tokens - admission.tokens
    scopes = [limit.scope for limit in admission.limits if limit.tpm is not None]
    if not moved or not scopes:
        return None
    return (
        update(LimitCounter)
        .where(
            LimitCounter.scope.in_(scopes),
            LimitCounter.kind == "tpm",
            LimitCounter.window_start == admission.minute,
        )
        .values(value=LimitCounter.value + moved)
    )


def _slots_back(admission: Admission) -> UpdateBase | None:
    scopes = [limit.scope for limit in admission.limits if limit.max_concurrent is not None]
    if not scopes:
        return None
    return delete(LimitSlot).where(
        LimitSlot.request_id == admission.request_id, LimitSlot.scope.in_(scopes)
    )


async def _lock(conn: AsyncConnection, scopes: list[str]) -> None:
    """Advisory locks, one per scope, released when the transaction ends; a select's
    columns are evaluated in order, so ``scopes`` sorted means locks taken sorted.

    The same statement lets this transaction commit without waiting for its WAL to
    reach the disk (a commit is still visible to every replica at once, so counting
    stays exact): a crash of PostgreSQL itself could forget the last moment's counts,
    which for a minute's rate costs nothing, and the wait was most of an admission."""
    unsynced = func.set_config("synchronous_commit", "off", True)
    locks = [func.pg_advisory_xact_lock(func.hashtextextended(scope, 0)) for scope in scopes]
    await conn.execute(select(unsynced, *locks))


async def _count(conn: AsyncConnection, ask: Ask, before: dict[str, Counted]) -> Admission:
    """Check, then count the request in every scope (a refusal writes nothing)."""
    check(ask, before)
    await _run(conn, _count_rows(ask), _slot_rows(ask))
    after = {scope: used.admitting(ask.tokens) for scope, used in before.items()}
    room = headroom(ask.limits, after, ask.now)
    return Admission(ask.request_id, ask.limits, minute_of(ask.now), ask.tokens, room)


async def _run(conn: AsyncConnection, *statements: UpdateBase | None) -> None:
    """Several writes in one round trip: the first, with the others as its CTEs
    (PostgreSQL runs a data-modifying CTE whether or not the statement reads it)."""
    present = [statement for statement in statements if statement is not None]
    if not present:
        return
    first, *rest = present
    for n, other in enumerate(rest):
        first = first.add_cte(other.cte(f"also_{n}"))
    await conn.execute(first)


def _missing(ask: Ask, found: Found) -> list[_Seed]:
    seeds = {
        _Seed(limit.scope, b.period, period_start(b.period, ask.now)): None
        for limit in ask.limits
        for b in limit.budgets
        if (limit.scope, budget_kind(b.period)) not in found
    }
    return list(seeds)


def _counted(ask: Ask, found: Found) -> dict[str, Counted]:
    out = {}
    for limit in ask.limits:
        scope = limit.scope
        spent = {b.period: found[(scope, budget_kind(b.period))] for b in limit.budgets}
        out[scope] = Counted(
            int(found.get((scope, "rpm"), 0)),
            int(found.get((scope, "tpm"), 0)),
            int(found.get((scope, SLOTS), 0)),
            spent,
        )
    return out


Row = tuple[str, str, int, float]  # scope, kind, window_start, value
COUNTER_COLUMNS = ("scope", "kind", "window_start", "value")


def _counter_rows(rows: list[Row]) -> Insert:
    """An insert of these rows, of one shape whatever their number (unnest over arrays):
    a multi-row VALUES is compiled again for every statement, this is compiled once."""
    scopes, kinds, windows, values = (list(column) for column in zip(*rows, strict=True))
    source = (
        func.unnest(
            bindparam(None, scopes, ARRAY(String)),
            bindparam(None, kinds, ARRAY(String)),
            bindparam(None, windows, ARRAY(BigInteger)),
            bindparam(None, values, ARRAY(Float)),
        )
        .table_valued(*COUNTER_COLUMNS)
        .render_derived()
    )
    return insert(LimitCounter).from_select(COUNTER_COLUMNS, select(source))


def _seed_rows(seeds: dict[_Seed, float]) -> Insert:
    rows = [
        (seed.scope, budget_kind(seed.period), int(seed.start.timestamp()), spent)
        for seed, spent in seeds.items()
    ]
    return _counter_rows(rows).on_conflict_do_nothing()


def _count_rows(ask: Ask) -> Insert | None:
    """This request's +1 request and +estimate tokens, for the scopes that limit them."""
    minute = minute_of(ask.now)
    rows = [
        (limit.scope, kind, minute, float(value))
        for limit in ask.limits
        for kind, limited, value in (("rpm", limit.rpm, 1), ("tpm", limit.tpm, ask.tokens))
        if limited is not None
    ]
    if not rows:
        return None
    upsert = _counter_rows(rows)
    return upsert.on_conflict_do_update(
        index_elements=[LimitCounter.scope, LimitCounter.kind, LimitCounter.window_start],
        set_={"value": LimitCounter.value + upsert.excluded.value},
    )


def _slot_rows(ask: Ask) -> Insert | None:
    scopes = [limit.scope for limit in ask.limits if limit.max_concurrent is not None]
    if not scopes:
        return None
    scope = func.unnest(bindparam(None, scopes, ARRAY(String)))
    rows = select(literal(ask.request_id, String), scope, literal(ask.now, LimitSlot.taken_at.type))
    columns = ("request_id", "scope", "taken_at")
    return insert(LimitSlot).from_select(columns, rows).on_conflict_do_nothing()
