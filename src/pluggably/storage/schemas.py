"""The answer of ``POST /v1/storage/cleanup`` (see ``retention``)."""

from __future__ import annotations

from pydantic import BaseModel


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
