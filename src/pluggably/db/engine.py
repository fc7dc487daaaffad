"""The async engine and session factory, owned by the app's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pluggably.db.reclaim import SpaceReclaimer
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.db")

# The database did not answer for a reason that passes: SQLite locked by another
# process past the busy timeout, PostgreSQL unreachable or its connection cut, the
# pool exhausted. Nothing was written; the same work may be tried again.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
CONNECT_TIMEOUT_S = 10  # PostgreSQL: a server that does not answer at all
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # SQLite: a WAL grown by a large write is cut back to this


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # A network database can drop idle connections: check them on checkout. A
        # server that does not answer at all fails a new connection in 10 s, not 60.
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT_S}
    else:
        # SQLite: aiosqlite serialises each connection on a thread; a short busy wait
        # rides over another connection's write lock instead of failing at once. A
        # `?timeout=` in the URL (seconds) sets this wait instead.
        if "timeout" not in make_url(url).query:
            kwargs["connect_args"] = {"timeout": 15}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "do_connect", _connect_or_operational_error)
        event.listen(engine.sync_engine, "handle_error", _transient_as_operational_error)
    return engine


# PostgreSQL ended the transaction to resolve a conflict with another one (deadlock
# detected, could not serialize): it was rolled back whole, and trying it again works.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def _transient_as_operational_error(context: Any) -> None:
    """Such a failure is one of DATABASE_DOWN (503 ``database_unavailable`` with
    Retry-After), not an internal error: asyncpg's error for it arrives as a plain
    DBAPIError."""
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        raise sa_exc.OperationalError(
            context.statement, context.parameters, context.original_exception
        ) from context.original_exception


def _connect_or_operational_error(
    dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]
) -> Any:
    """asyncpg raises plain OSError / TimeoutError when the server cannot be reached
    (refused, reset during the handshake, no answer); SQLAlchemy passes those through
    unwrapped. As OperationalError they are what they are: the database is down."""
    try:
        return dialect.loaded_dbapi.connect(*cargs, **cparams)
    except (OSError, TimeoutError) as exc:
        raise sa_exc.OperationalError("connect", None, exc) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Takes effect only in a new, empty file (before its first table); a file made
    # before is switched once by `pluggably serve` / `db upgrade` (db/auto_vacuum.py),
    # never here. Freed pages are then given back by SpaceReclaimer (db/reclaim.py)
    # instead of staying in the file.
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


class Database:
    """One engine and its session factory. Built once per app, disposed at shutdown."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.reclaimer = SpaceReclaimer(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block succeeds, rolls back otherwise. A block
        that never touched the database (every lookup served from a cache) costs no
        commit and no close: each is a greenlet round trip."""
        session = self.sessions()
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            if session.in_transaction():
                await session.rollback()
            raise
        finally:
            if session.in_transaction() or session.identity_map:
                await session.close()

    async def ping(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
        """True when the database answers a trivial query within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
