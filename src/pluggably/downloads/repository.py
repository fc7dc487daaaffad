"""All queries on download jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import utcnow
from pluggably.downloads.models import DownloadJob

ACTIVE = ("queued", "running")


class DownloadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: str) -> DownloadJob | None:
        return await self.session.get(DownloadJob, job_id)

    async def add(self, job: DownloadJob) -> None:
        self.session.add(job)
        await self.session.flush()

    async def active_by_key(self, key: str) -> DownloadJob | None:
        query = select(DownloadJob).where(
            DownloadJob.source_key == key, DownloadJob.status.in_(ACTIVE)
        )
        return await self.session.scalar(query.limit(1))

    async def active_by_model(self, model_id: str) -> DownloadJob | None:
        query = select(DownloadJob).where(
            DownloadJob.model_id == model_id, DownloadJob.status.in_(ACTIVE)
        )
        return await self.session.scalar(query.limit(1))

    async def completed_by_key(self, key: str) -> DownloadJob | None:
        query = (
            select(DownloadJob)
            .where(DownloadJob.source_key == key, DownloadJob.status == "completed")
            .order_by(DownloadJob.created_at.desc())
        )
        return await self.session.scalar(query.limit(1))

    async def abandoned_by_key(self, key: str) -> Sequence[DownloadJob]:
        """Failed or cancelled attempts at the same source, newest first."""
        query = (
            select(DownloadJob)
            .where(DownloadJob.source_key == key, DownloadJob.status.in_(("failed", "cancelled")))
            .order_by(DownloadJob.created_at.desc())
        )
        return (await self.session.execute(query)).scalars().all()

    async def active(self) -> Sequence[DownloadJob]:
        query = select(DownloadJob).where(DownloadJob.status.in_(ACTIVE))
        return (await self.session.execute(query.order_by(DownloadJob.created_at))).scalars().all()

    async def unclaimed(self, now: datetime | None) -> Sequence[str]:
        """Active jobs no replica holds a live lease on (``now`` None: every active job)."""
        query = select(DownloadJob.id).where(DownloadJob.status.in_(ACTIVE))
        if now is not None:
            query = query.where(_free(now))
        return (await self.session.execute(query.order_by(DownloadJob.created_at))).scalars().all()

    async def claim(
        self, job_id: str, runner_id: str, until: datetime, now: datetime | None
    ) -> bool:
        """The job's lease for ``runner_id`` if it is active and its lease is free,
        expired or already its own (``now`` None: whoever holds it)."""
        query = _active(job_id)
        if now is not None:
            query = query.where(or_(_free(now), DownloadJob.runner_id == runner_id))
        return await self._one(query.values(runner_id=runner_id, lease_until=until))

    async def renew(self, job_id: str, runner_id: str, until: datetime, bytes_done: int) -> bool:
        """Progress written and the lease extended, while ``runner_id`` still holds it."""
        query = _active(job_id).where(DownloadJob.runner_id == runner_id)
        return await self._one(query.values(lease_until=until, bytes_done=bytes_done))

    async def release(self, job_id: str, runner_id: str) -> None:
        query = update(DownloadJob).where(
            DownloadJob.id == job_id, DownloadJob.runner_id == runner_id
        )
        await self._one(query.values(runner_id=None, lease_until=None))

    async def cancel_unclaimed(self, job_id: str, now: datetime | None) -> bool:
        """Cancelled at once if no replica holds its lease (queued, or its runner gone);
        ``now`` None: whoever holds it."""
        query = _active(job_id)
        if now is not None:
            query = query.where(_free(now))
        return await self._one(
            query.values(status="cancelled", finished_at=utcnow(), runner_id=None, lease_until=None)
        )

    async def request_cancel(self, job_id: str) -> bool:
        """Flag the job for its runner (on another replica) to cancel."""
        return await self._one(_active(job_id).values(cancel_requested=true()))

    async def _one(self, query: Update) -> bool:
        result: Any = await self.session.execute(query.execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)

    async def reserved_bytes(self) -> int:
        """Bytes that running downloads have yet to write."""
        query = select(
            func.coalesce(func.sum(DownloadJob.bytes_total - DownloadJob.bytes_done), 0)
        ).where(DownloadJob.status.in_(ACTIVE), DownloadJob.bytes_total.is_not(None))
        return int((await self.session.execute(query)).scalar_one() or 0)

    async def page(self, limit: int, status: str | None) -> Sequence[DownloadJob]:
        query = select(DownloadJob).order_by(DownloadJob.created_at.desc(), DownloadJob.id)
        if status:
            query = query.where(DownloadJob.status == status)
        return (await self.session.execute(query.limit(limit))).scalars().all()


def _active(job_id: str) -> Update:
    return update(DownloadJob).where(DownloadJob.id == job_id, DownloadJob.status.in_(ACTIVE))


def _free(now: datetime) -> ColumnElement[bool]:
    """No live lease: never claimed, released (a replica that shut down), or expired
    (a replica that died or stalled)."""
    return or_(
        DownloadJob.runner_id.is_(None),
        DownloadJob.lease_until.is_(None),
        DownloadJob.lease_until < now,
    )
