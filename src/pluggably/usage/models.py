"""Tables of the shared counters (PostgreSQL; usage/pg_counters.py). SQLite servers
count in memory and leave them empty."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from pluggably.db.base import Base, UTCDateTime, utcnow


class LimitCounter(Base):
    """One count: requests or tokens of a scope in a minute (``window_start`` = minutes since
    the epoch), or its spend in a budget period (``window_start`` = the period's start, in
    seconds since the epoch)."""

    __tablename__ = "limit_counters"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # rpm|tpm|budget_<period>
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class LimitSlot(Base):
    """A concurrency slot a request holds in a scope from admission to settlement."""

    __tablename__ = "limit_slots"

    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
