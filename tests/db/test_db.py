"""Database: migrations match the tables, timestamps are timezone-aware, upgrade
is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from pluggably.db import Database, migrate
from pluggably.users.models import User


@pytest.fixture
async def db(database_url: str):
    database = Database(database_url)
    await migrate.upgrade(database.engine)
    yield database
    await database.dispose()


async def test_migrations_match_the_tables(db: Database) -> None:
    # Equivalent of `alembic check`: raises if autogenerate would produce a diff.
    await migrate.check(db.engine)


async def test_upgrade_is_idempotent(db: Database) -> None:
    head = await migrate.current_revision(db.engine)
    assert head is not None
    await migrate.upgrade(db.engine)
    assert await migrate.current_revision(db.engine) == head


async def test_timestamps_round_trip_timezone_aware(db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 11, 26, 14, 30, 15, 123456, tzinfo=plus_two)
    async with db.session() as session:
        session.add(
            User(
                id="usr_tz",
                username="tz",
                role="user",
                preferences={},
                created_at=moment,
                updated_at=moment,
            )
        )
    async with db.session() as session:
        user = await session.get(User, "usr_tz")
        assert user is not None
        assert user.created_at.tzinfo is not None
        assert user.created_at.utcoffset() == timedelta(0)
        assert user.created_at == moment
        assert user.created_at.hour == 12


async def test_naive_datetimes_are_refused(db: Database) -> None:
    from sqlalchemy.exc import StatementError

    naive = datetime(2026, 1, 1)
    user = User(id="usr_naive", role="user", preferences={}, created_at=naive, updated_at=naive)
    async with db.sessions() as session:
        session.add(user)
        with pytest.raises(StatementError, match="naive"):
            await session.flush()


async def _add_then_fail(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        session.add(User(id="usr_rb", role="user", preferences={}, created_at=now, updated_at=now))
        await session.flush()
        raise RuntimeError("boom")


async def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await _add_then_fail(db)
    async with db.session() as session:
        count = await session.execute(text("SELECT count(*) FROM users WHERE id='usr_rb'"))
        assert count.scalar_one() == 0


async def test_ping(db: Database) -> None:
    assert await db.ping() is True
    dead = Database("postgresql+asyncpg://x:y@127.0.0.1:9/z")
    try:
        assert await dead.ping(timeout=2) is False
    finally:
        await dead.dispose()
