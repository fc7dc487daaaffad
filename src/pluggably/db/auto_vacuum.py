"""Switching an SQLite file made before Pluggably used auto-vacuum to it, once.

A new file is created with ``auto_vacuum=INCREMENTAL`` (a pragma on every connection,
which counts only before the first table). A file made before keeps ``NONE`` until a
full VACUUM rewrites it: that holds the write lock for the whole rewrite (minutes for
a file of gigabytes) and needs the file's size free twice over (a temporary copy in
SQLite's temp directory, then the same again in the WAL). So it is never done by
whatever opens an engine: only ``pluggably serve`` and ``pluggably db upgrade`` call
``enable_incremental_vacuum``, after the migrations and before requests are taken.
When the disk has not that much room (plus a margin) it is skipped with a warning and
the file works as before (freed pages reused, not given back); the next start tries
again, and so does ``pluggably db upgrade`` once there is room."""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from pluggably.db.engine import make_engine
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.db")

FREE_MARGIN_BYTES = 64 * 1024 * 1024  # room left on the disk after the rewrite


async def enable_incremental_vacuum(url: str, *, margin_bytes: int = FREE_MARGIN_BYTES) -> bool:
    """Switch the SQLite file at ``url`` to incremental auto-vacuum if it has tables
    and does not use it yet; True when it was switched now. Never raises: a file that
    cannot be switched (no room, read-only, locked by a running server) is logged and
    left as it is. Anything but an SQLite file is left alone."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    path = Path(parsed.database)
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM: no BEGIN
            if not await _needs_switch(conn):
                return False
            if not _room_for_vacuum(path, margin_bytes):
                return False
            await _vacuum(conn, path)
            return True
    except Exception as exc:  # the driver's OperationalError, whichever driver
        log.warning("sqlite_auto_vacuum_not_enabled", reason=str(exc))
        return False
    finally:
        await engine.dispose()


async def _needs_switch(conn: AsyncConnection) -> bool:
    mode = (await conn.exec_driver_sql("PRAGMA auto_vacuum")).scalar_one()
    tables = (await conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")).scalar_one()
    return int(mode) == 0 and int(tables) > 0


async def _vacuum(conn: AsyncConnection, path: Path) -> None:
    size = _file_bytes(path)
    log.info("sqlite_auto_vacuum_switching", file=str(path), file_bytes=size)
    started = time.monotonic()
    await conn.exec_driver_sql("PRAGMA auto_vacuum=INCREMENTAL")
    await conn.exec_driver_sql("VACUUM")
    # The rewrite went through the WAL: copy it back and cut it now, not at some later
    # checkpoint, so that the disk gets its room back.
    await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    log.info(
        "sqlite_auto_vacuum_enabled",
        file=str(path),
        seconds=round(time.monotonic() - started, 1),
        file_bytes_before=size,
        file_bytes_after=_file_bytes(path),
    )


def _room_for_vacuum(path: Path, margin_bytes: int) -> bool:
    """Whether the disks can take the VACUUM's temporary copy and its WAL (the file's
    size each) and still keep ``margin_bytes`` free; logs a warning when not."""
    size = _file_bytes(path)
    needed: defaultdict[int, int] = defaultdict(int)
    places: dict[int, Path] = {}
    for place in (path.parent, _sqlite_temp_dir()):
        device = place.stat().st_dev
        needed[device] += size
        places.setdefault(device, place)
    for device, bytes_needed in needed.items():
        free = shutil.disk_usage(places[device]).free
        if free < bytes_needed + margin_bytes:
            log.warning(
                "sqlite_auto_vacuum_skipped",
                reason="not enough free disk space for the one-time VACUUM",
                file=str(path),
                file_bytes=size,
                directory=str(places[device]),
                free_bytes=free,
                needed_bytes=bytes_needed + margin_bytes,
                hint="free some space, then run `pluggably db upgrade`",
            )
            return False
    return True


def _sqlite_temp_dir() -> Path:
    """Where SQLite on Unix writes temporary files (os_unix.c ``unixTempFileDir``):
    $SQLITE_TMPDIR, $TMPDIR, then the first usable of /var/tmp, /usr/tmp, /tmp, '.'."""
    # Only measured for free space here, never written to.
    fixed = ["/var/tmp", "/usr/tmp", "/tmp"]  # noqa: S108
    candidates = [os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"), *fixed]
    for candidate in candidates:
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path.cwd()


def _file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
