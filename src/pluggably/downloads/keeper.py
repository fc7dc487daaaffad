"""What keeps a transferring download job this replica's: its progress written and its
lease renewed at a steady beat (every second; four times a lease, for a lease under
four seconds), even when no byte arrives, so a stalled transfer keeps its lease and
still hears a cancel asked on any replica.

The fence (PostgreSQL, where another replica may take the job over): a run that has not
renewed its lease for three quarters of it stops its transfer there and then, without
waiting for the database to answer, so that it never writes the staging files another
replica may be resuming once the lease ran out. The quarter left is also how far apart
the replicas' clocks may be: ``lease_until`` is the runner's time, compared with the
claimant's (keep them in sync with NTP, as heartbeats need too)."""

from __future__ import annotations

import asyncio
import time
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
FENCE_AT = 0.75  # of the lease, since the last renewal that the database confirmed began


class Keeper:
    """The beat of this replica's transferring runs (see the module's words)."""

    def __init__(self, db: Database, leases: Leases) -> None:
        self.db, self.leases = db, leases
        replica = leases.replica
        self.every_s = min(FLUSH_EVERY_S, replica.heartbeat_s)
        # SQLite: no other replica can take a job, so a slow database stops nothing.
        self.fence_s = replica.lease_s * FENCE_AT if replica.shared else None

    @asynccontextmanager
    async def kept(self, job_id: str, run: Run) -> AsyncIterator[None]:
        """While the transfer runs: flushed at each beat, and fenced."""
        done = asyncio.Event()
        beat = asyncio.create_task(self._beat(job_id, run, done))
        fence = asyncio.create_task(self._fence(job_id, run)) if self.fence_s else None
        run.transferring = True
        try:
            yield
        finally:
            run.transferring = False
            if fence is not None:
                fence.cancel()  # it only sleeps
                await asyncio.wait({fence})
            done.set()
            await beat  # not cancelled: it may be inside a database call

    async def flush(self, job_id: str, run: Run) -> None:
        """Progress to the database and to listeners, the lease renewed; a cancel asked
        on any replica stops the run, and so does a lease that is no longer ours."""
        started = time.monotonic()
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
        run.renewed_at = started  # committed: the lease holds until lease_s after it

    async def _beat(self, job_id: str, run: Run, done: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(done.wait(), self.every_s)
                return
            except TimeoutError:
                pass
            try:
                await self.flush(job_id, run)
            except Exception:  # the database is away: the next beat tries again
                log.warning("download_flush_failed", job_id=job_id, exc_info=True)

    async def _fence(self, job_id: str, run: Run) -> None:
        assert self.fence_s is not None
        while True:  # each renewal moves the fence on: sleep to where it is now
            left = run.renewed_at + self.fence_s - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(left)
        log.warning("download_lease_unconfirmed", job_id=job_id, after_s=self.fence_s)
        run.lost = True
        run.stop()
