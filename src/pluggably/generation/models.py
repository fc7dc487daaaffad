"""The requests table: one row per generation, owned by its caller."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pluggably.db.base import Base, UTCDateTime, utcnow
from pluggably.ids import new_id


class RequestRecord(Base):
    __tablename__ = "requests"
    __table_args__ = (
        # Usage reports and budget seeds read a user's (or token's) rows by time.
        Index("ix_requests_user_id_created_at", "user_id", "created_at"),
        Index("ix_requests_token_id_created_at", "token_id", "created_at"),
        Index("ix_requests_created_at", "created_at"),
        # A survivor finds a dead replica's unfinished requests (cluster/).
        Index("ix_requests_replica_id_status", "replica_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("req"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    model: Mapped[str | None] = mapped_column(String(300))
    provider: Mapped[str | None] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16))
    stream: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    # The API token the request came with (None: a login, the admin key, local mode).
    token_id: Mapped[str | None] = mapped_column(String(40))
    # The replica that runs it (cluster/): its events and cancel are relayed there.
    replica_id: Mapped[str | None] = mapped_column(String(40))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    # The full response once completed (prompts are never stored here).
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
