"""Model storage (admin only): usage against the quota, and the retention policy."""

from __future__ import annotations

from fastapi import APIRouter

from pluggably.api.deps import (
    AdminUser,
    DbSession,
    Registry,
    StorageQuota,
    StorageRetention,
)
from pluggably.api.schemas import AUTH_ERRORS
from pluggably.storage.report import storage_report
from pluggably.storage.schemas import CleanupReport, CleanupRequest, StorageReport

router = APIRouter(prefix="/v1/storage", tags=["storage"], responses=AUTH_ERRORS)


@router.get("", response_model=StorageReport)
async def storage(
    _admin: AdminUser, session: DbSession, quota: StorageQuota, registry: Registry
) -> StorageReport:
    return await storage_report(session, quota, registry)


@router.post("/cleanup", response_model=CleanupReport)
async def cleanup(
    _admin: AdminUser,
    session: DbSession,
    retention: StorageRetention,
    body: CleanupRequest | None = None,
) -> CleanupReport:
    """Apply the retention policy now; ``dry_run`` reports without deleting."""
    return await retention.cleanup(session, dry_run=body.dry_run if body else False)
