"""All queries on artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.artifacts.models import Artifact


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, artifact_id: str) -> Artifact | None:
        return await self.session.get(Artifact, artifact_id)

    async def add(self, artifact: Artifact) -> None:
        self.session.add(artifact)
        await self.session.flush()

    async def expired(self, backend: str, now: datetime, limit: int) -> Sequence[Artifact]:
        """Rows of ``backend`` past their expiry, oldest first. On PostgreSQL the rows
        stay locked and other replicas' cleanups skip them (SQLite has one writer)."""
        query = (
            select(Artifact)
            .where(Artifact.backend == backend, Artifact.expires_at <= now)
            .order_by(Artifact.expires_at, Artifact.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(query)).scalars().all()

    async def delete(self, artifact_id: str) -> bool:
        """True if this call removed the row. A plain DELETE, so a row another
        process removed first is not an error."""
        result = await self.session.execute(delete(Artifact).where(Artifact.id == artifact_id))
        return bool(getattr(result, "rowcount", 0))
