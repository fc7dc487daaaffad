"""Model storage (admin only): usage against the quota, and the retention policy."""

from __future__ import annotations

from fastapi import APIRouter

from pluggably.api.deps import (
    AdminUser,
    DbSession,
    Downloads,
    Registry,
    StorageQuota,
    StorageRetention,
)
from pluggably.api.schemas import AUTH_ERRORS
from pluggably.storage.schemas import CleanupReport, CleanupRequest, StorageReport, StoredModel

router = APIRouter(prefix="/v1/storage", tags=["storage"], responses=AUTH_ERRORS)


@router.get("", response_model=StorageReport)
async def storage(
    _admin: AdminUser, session: DbSession, quota: StorageQuota, registry: Registry
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


@router.post("/cleanup", response_model=CleanupReport)
async def cleanup(
    _admin: AdminUser,
    session: DbSession,
    retention: StorageRetention,
    downloads: Downloads,
    body: CleanupRequest | None = None,
) -> CleanupReport:
    """Apply the retention policy now; ``dry_run`` reports without deleting."""
    return await retention.cleanup(
        session,
        dry_run=body.dry_run if body else False,
        active_jobs=await downloads.active_jobs(),
    )
