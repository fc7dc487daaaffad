"""A stored response: the items its request added to the conversation (normalized,
each with its id), the response object as it was answered (its output items among
it), and the response it continued. A response belongs to one user; its chain is
followed through ``previous_response_id`` (no foreign key: deleting a response leaves
the ones that continued it, which then carry on with what remains)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from pluggably.db.base import Base, UTCDateTime, utcnow


class StoredResponse(Base):
    __tablename__ = "stored_responses"
    __table_args__ = (
        Index("ix_stored_responses_user_id", "user_id"),
        Index("ix_stored_responses_created_at", "created_at"),  # retention's purge
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # resp_…
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    previous_response_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The items this request added ({id, type, …} as input_items lists them).
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The response object as returned (status, output items, usage, …).
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
