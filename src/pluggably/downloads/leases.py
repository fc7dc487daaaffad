"""Which replica runs each download job (API.md §11): a lease in the job's row,
claimed with one conditional UPDATE before a run starts, renewed by its runner every
second, released when the run ends or its replica shuts down, and claimed by a
survivor once it expires (its replica died). ``lease_until`` is the runner's clock,
compared with the claimant's: replicas keep their clocks in sync (NTP), and a runner
stops writing a quarter of a lease before its lease ends (keeper.py), which is the
drift they may have. On SQLite this process is the only one: leases are written, but
what it finds unfinished is its own whatever they say."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.cluster.identity import ReplicaIdentity
from pluggably.db import Database, utcnow
from pluggably.downloads.repository import DownloadRepository


class Leases:
    """This replica's side of the download job leases."""

    def __init__(self, db: Database, replica: ReplicaIdentity) -> None:
        self.db, self.replica = db, replica

    @property
    def me(self) -> str:
        return self.replica.replica_id

    def until(self) -> datetime:
        """When a lease taken or renewed now expires."""
        return utcnow() + timedelta(seconds=self.replica.lease_s)

    def _now(self) -> datetime | None:
        """What leases expire against; None where no other replica can hold one."""
        return utcnow() if self.replica.shared else None

    async def claim(self, job_id: str) -> bool:
        """The job is this replica's to run (False: another replica runs it, or it ended)."""
        async with self.db.session() as session:
            repo = DownloadRepository(session)
            return await repo.claim(job_id, self.me, self.until(), self._now())

    async def unclaimed(self) -> Sequence[str]:
        """Active jobs that no live replica runs."""
        async with self.db.session() as session:
            return await DownloadRepository(session).unclaimed(self._now())

    async def renew(self, session: AsyncSession, job_id: str, bytes_done: int) -> bool:
        """False: the lease is no longer this replica's (it expired and was taken over)
        or the job ended elsewhere."""
        repo = DownloadRepository(session)
        return await repo.renew(job_id, self.me, self.until(), bytes_done)

    async def release(self, job_id: str) -> None:
        async with self.db.session() as session:
            await DownloadRepository(session).release(job_id, self.me)

    async def cancel_unclaimed(self, session: AsyncSession, job_id: str) -> bool:
        """Cancelled now, in ``session``, when no replica runs it."""
        return await DownloadRepository(session).cancel_unclaimed(job_id, self._now())
