"""All queries on download jobs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
