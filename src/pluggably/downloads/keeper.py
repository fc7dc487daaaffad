"""What keeps a transferring download job this replica's: its progress written and its
lease renewed every second, even when no byte arrives, so a stalled transfer keeps its
lease and still hears a cancel asked on any replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pluggably.db import Database
from pluggably.downloads.leases import Leases
from pluggably.downloads.repository import DownloadRepository
from pluggably.downloads.runs import Run
from pluggably.downloads.schemas import job_info
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.downloads")
FLUSH_EVERY_S = 1.0


class Keeper:
    """The beat of this replica's transferring runs (see the module's words)."""

    def __init__(self, db: Database, leases: Leases) -> None:
        self.db, self.leases = db, leases

    @asynccontextmanager
    async def kept(self, job_id: str, run: Run) -> AsyncIterator[None]:
        """While the transfer runs: flushed at each beat."""
        done = asyncio.Event()
        beat = asyncio.create_task(self._beat(job_id, run, done))
        run.transferring = True
        try:
            yield
        finally:
            run.transferring = False
            done.set()
            await beat  # not cancelled: it may be inside a database call

    async def flush(self, job_id: str, run: Run) -> None:
        """Progress to the database and to listeners, the lease renewed; a cancel asked
        on any replica stops the run, and so does a lease that is no longer ours."""
        async with self.db.session() as session:
            if not await self.leases.renew(session, job_id, run.bytes_done):
                run.lost = True
                run.stop()
                return
            job = await DownloadRepository(session).get(job_id)
            assert job is not None
            if job.cancel_requested and not run.cancel.is_set():
                run.stop()
            run.notify(job_info(job, run.speed_bps))

    async def _beat(self, job_id: str, run: Run, done: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(done.wait(), FLUSH_EVERY_S)
                return
            except TimeoutError:
                pass
            try:
                await self.flush(job_id, run)
            except Exception:  # the database is away: the next beat tries again
                log.warning("download_flush_failed", job_id=job_id, exc_info=True)
