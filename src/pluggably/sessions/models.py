"""Sessions and messages. A session belongs to one user; its messages are stored in
order (``seq``), each with its own id and timestamp. ``message_count`` and
``last_used_at`` live on the session row so that listing needs no per-row query.

Stored size: each message carries its ``size_bytes``; each session keeps the running
total of its messages (``message_bytes``) and the size of its own fields
(``own_bytes``), so that what a user stores is one SUM over their sessions, read from
``ix_sessions_user_bytes`` alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pluggably.db.base import Base, UTCDateTime, utcnow
from pluggably.ids import new_id


class ChatSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_activity", "user_id", "last_used_at", "id"),
        # Covers the per-user SUM of sizes that every growing write runs under the
        # owner's lock: read from the index alone, however many sessions the user has.
        Index("ix_sessions_user_bytes", "user_id", "message_bytes", "own_bytes"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(200))
    # True once a user set the title: an explicit title is never replaced by the automatic one.
    title_explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)  # active|closed
    system_prompt: Mapped[str | None] = mapped_column(Text)
    state_tokens: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    next_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sizes counted against the owner's storage bound (sessions/storage.py).
    message_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    own_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SessionMessage(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_session_seq", "session_id", "seq", unique=True),
        # Covers the page planning query (seq and size, newest first) without reading
        # the message text.
        Index("ix_messages_session_seq_size", "session_id", "seq", "size_bytes"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("msg"))
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # order within the session
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | system | tool
    content: Mapped[str] = mapped_column(Text, default="")
    modality: Mapped[str] = mapped_column(String(16), default="text")
    model: Mapped[str | None] = mapped_column(String(300))
    provider: Mapped[str | None] = mapped_column(String(64))
    # [{id, type, content_type}] of the artifacts this turn produced (links are signed on read).
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # An assistant turn that called tools: [{id, type: "function", function: {name,
    # arguments}}] (OpenAI's shape, as the session API shows it); None otherwise.
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tool_call_id: Mapped[str | None] = mapped_column(String(200))  # a tool turn's call
    # An assistant turn's visible reasoning, and its vendor's signature (replayed with it).
    reasoning: Mapped[str | None] = mapped_column(Text)
    reasoning_signature: Mapped[str | None] = mapped_column(Text)
    # stop | length | tool_calls | cancelled (partial text kept) | error; None for user turns.
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
