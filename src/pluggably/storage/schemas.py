"""Bodies of the model storage routes: the storage report, and the request and answer of
``POST /v1/storage/cleanup`` (see ``retention``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Removed(BaseModel):
    kind: str  # "staging" | "model"
    id: str
    bytes: int
    reason: str


class CleanupReport(BaseModel):
    dry_run: bool
    removed: list[Removed]
    freed_bytes: int
    used_bytes_after: int


class StoredModel(BaseModel):
    id: str
    size_bytes: int | None
    last_used_at: datetime | None
    pinned: bool


class StorageReport(BaseModel):
    limit_bytes: int | None
    used_bytes: int
    free_bytes: int
    models: list[StoredModel]


class CleanupRequest(BaseModel):
    # Strict: a destructive switch takes true/false only, never 0 or "no".
    dry_run: bool = Field(default=False, strict=True)
