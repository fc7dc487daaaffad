"""The retention policy, applied on demand (POST /v1/storage/cleanup):

1. leftovers of downloads that are not running (failed or cancelled jobs' partial
   files) go first;
2. then, while the models use more than the quota (or for models idle longer than
   the configured days), downloaded models that are unpinned, not a default and
   not loaded, least recently used first.

Discovered and bundled models are never deleted: Pluggably does not own their files.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import utcnow
from pluggably.registry.service import RegistryService
from pluggably.storage.quota import Quota, tree_size
from pluggably.storage.schemas import CleanupReport, Removed


@dataclass
class Retention:
    quota: Quota
    registry: RegistryService
    staging: Path
    active_jobs: Callable[[], Awaitable[set[str]]]  # downloads running now: their files stay
    max_idle_days: int | None = None

    async def cleanup(self, session: AsyncSession, *, dry_run: bool) -> CleanupReport:
        removed: list[Removed] = []
        active_jobs = await self.active_jobs()
        for path in sorted(self.staging.glob("*")) if self.staging.is_dir() else []:
            if path.name in active_jobs:
                continue
            size = await asyncio.to_thread(tree_size, path)
            removed.append(
                Removed(kind="staging", id=path.name, bytes=size, reason="unfinished download")
            )
            if not dry_run:
                await asyncio.to_thread(shutil.rmtree, path, True)
        used = await self.quota.used_bytes() - (sum(r.bytes for r in removed) if dry_run else 0)
        for model, size, reason in await self._candidates(session, used):
            removed.append(Removed(kind="model", id=model, bytes=size, reason=reason))
            used -= size
            if not dry_run:
                await self.registry.delete(session, model)
        # Model files go once the transaction commits, so the result is computed.
        after = used
        return CleanupReport(
            dry_run=dry_run,
            removed=removed,
            freed_bytes=sum(r.bytes for r in removed),
            used_bytes_after=after,
        )

    async def _candidates(self, session: AsyncSession, used: int) -> list[tuple[str, int, str]]:
        defaults = set((await self.registry.defaults(session)).values())
        models = [
            m
            for m in await self.registry.all(session)
            if m.owns_files
            and not m.pinned
            and m.id not in defaults
            and not self.registry.runtimes.state(m.id).in_use
        ]
        models.sort(key=lambda m: m.last_used_at or m.created_at)
        limit = self.quota.limit_bytes
        idle_before = utcnow() - timedelta(days=self.max_idle_days) if self.max_idle_days else None
        chosen = []
        for model in models:
            size = model.size_bytes or 0
            if limit is not None and used > limit:
                chosen.append((model.id, size, "over the storage quota, least recently used"))
                used -= size
            elif idle_before is not None and (model.last_used_at or model.created_at) < idle_before:
                chosen.append((model.id, size, f"unused for {self.max_idle_days} days"))
                used -= size
        return chosen
