"""The download_jobs table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from pluggably.db.base import Base, UTCDateTime, utcnow
from pluggably.ids import new_id


class DownloadJob(Base):
    __tablename__ = "download_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    model_id: Mapped[str] = mapped_column(String(300), index=True)
    # What is being fetched; equal keys mean the same transfer (dedupe).
    source_key: Mapped[str] = mapped_column(String(2500), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The resolved plan: [{"path", "url", "size", "sha256"}], the destination folder
    # (relative to the models directory) and the registration to make when done.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The replica running it and until when its lease holds (renewed while it runs; an
    # expired lease is taken over by another replica), and a cancel asked from any.
    runner_id: Mapped[str | None] = mapped_column(String(40))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
