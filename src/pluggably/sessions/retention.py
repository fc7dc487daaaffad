"""The session retention policy: closed sessions and idle active sessions are
deleted, with their messages, after a configured number of days."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database, utcnow
from pluggably.observability.logging import get_logger
from pluggably.sessions.repository import SessionRepository

log = get_logger("pluggably.sessions")

RETENTION_BATCH = 500


class SessionRetention:
    """The retention half of ``SessionService``."""

    async def apply_retention(
        self,
        db_session: AsyncSession,
        *,
        closed_days: int | None,
        idle_days: int | None,
        now: datetime | None = None,
        batch: int = RETENTION_BATCH,
    ) -> int:
        """Purge closed sessions closed more than ``closed_days`` ago, then active
        sessions unused for more than ``idle_days``; None disables a rule. How many
        sessions were deleted."""
        now = now or utcnow()
        repo = SessionRepository(db_session)
        removed = 0
        rules = [(closed_days, repo.closed_before), (idle_days, repo.idle_since)]
        for days, select_ids in rules:
            if days is None:
                continue
            cutoff = now - timedelta(days=days)
            while ids := await select_ids(cutoff, batch):
                removed += await repo.delete_sessions(ids)
                if len(ids) < batch:
                    break
        return removed

    async def retain(self, db: Database, *, closed_days: int | None, idle_days: int | None) -> int:
        """One pass of the periodic retention (background work: its own transaction);
        the space freed goes back to the file system."""
        async with db.session() as db_session:
            removed = await self.apply_retention(
                db_session, closed_days=closed_days, idle_days=idle_days
            )
        if removed:
            log.info("sessions_expired", count=removed)
            await db.reclaimer.run()
        return removed
