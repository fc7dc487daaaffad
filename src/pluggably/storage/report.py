"""GET /v1/storage: the models directory against its quota, model by model."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.registry.service import RegistryService
from pluggably.storage.quota import Quota
from pluggably.storage.schemas import StorageReport, StoredModel


async def storage_report(
    session: AsyncSession, quota: Quota, registry: RegistryService
) -> StorageReport:
    used = await quota.used_bytes()
    free = quota.disk_free()
    if quota.limit_bytes is not None:
        free = max(0, min(free, quota.limit_bytes - used))
    defaults = set((await registry.defaults(session)).values())
    return StorageReport(
        limit_bytes=quota.limit_bytes,
        used_bytes=used,
        free_bytes=free,
        models=[
            StoredModel(
                id=m.id,
                size_bytes=m.size_bytes,
                last_used_at=m.last_used_at,
                pinned=m.pinned or m.id in defaults,
            )
            for m in await registry.all(session)
            if m.provider == "local"
        ],
    )
