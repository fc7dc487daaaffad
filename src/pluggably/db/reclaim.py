"""Giving an SQLite file's free pages back to the filesystem after large deletes.

SQLite keeps the pages of deleted rows in the file (for reuse) unless the database
uses auto-vacuum. Pluggably's databases use ``auto_vacuum=INCREMENTAL`` (set when
the file is created; a file made before is switched once by ``pluggably serve`` or
``pluggably db upgrade``, db/auto_vacuum.py): free pages stay
until ``PRAGMA incremental_vacuum(N)`` moves up to N of them to the end and cuts the
file. That needs the write lock, so it runs off the request path (after the response
of a purge, after a retention pass) and in steps of ``step_pages`` with a pause
between: a request that writes meanwhile waits for one step (a few milliseconds),
never for the whole reclaim as it would behind a full VACUUM. PostgreSQL's own
autovacuum makes freed space reusable; nothing is done there."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pluggably.observability.logging import get_logger

log = get_logger("pluggably.db")


class SpaceReclaimer:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        step_pages: int = 1024,
        pause_s: float = 0.01,
        min_free_pages: int = 256,
    ) -> None:
        self.engine = engine
        self.step_pages = step_pages
        self.pause_s = pause_s
        self.min_free_pages = min_free_pages  # fewer are left for reuse
        self._running = asyncio.Lock()  # one reclaim at a time
        self._again = False  # asked for while one ran: it goes round once more

    async def run(self) -> int:
        """Release free pages until fewer than ``min_free_pages`` are left; how many
        were released. Calls while one runs only ask it to go round again."""
        if self.engine.dialect.name != "sqlite":
            return 0
        if self._running.locked():
            self._again = True
            return 0
        released = 0
        async with self._running:
            self._again = True
            while self._again:
                self._again = False
                try:
                    released += await self._release()
                except (SQLAlchemyError, sqlite3.Error) as exc:  # locked too long, disk error
                    # Nothing is lost: the pages stay free in the file for the next try.
                    log.warning("sqlite_space_not_reclaimed", reason=str(exc))
                    break
        if released:
            log.info("sqlite_space_reclaimed", pages=released)
        return released

    async def _release(self) -> int:
        released = 0
        while True:
            async with self.engine.connect() as conn:
                free = await _pragma(conn, "freelist_count")
                if free < self.min_free_pages:
                    break
                await _incremental_vacuum(conn, min(free, self.step_pages))
                step = free - await _pragma(conn, "freelist_count")
            if step <= 0:  # a file without auto-vacuum keeps its free pages
                break
            released += step
            await asyncio.sleep(self.pause_s)
        if released:
            # Copy the moved pages into the file now, so that it is cut now; PASSIVE
            # waits for nobody and leaves what it cannot copy to the next checkpoint.
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        return released


async def _pragma(conn: AsyncConnection, name: str) -> int:
    return int((await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one())


async def _incremental_vacuum(conn: AsyncConnection, pages: int) -> None:
    """``PRAGMA incremental_vacuum`` frees one page per step of its statement, and the
    sqlite3 module steps a statement without result columns only once; its
    ``executescript`` steps every statement to the end (aiosqlite passes it through,
    and its errors, unwrapped)."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # a live pooled connection
    await driver.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
