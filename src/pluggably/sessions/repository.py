"""All queries of the sessions domain.

Counters (``next_seq``, ``message_count``) and the automatic title are changed by
single UPDATE statements, not read-modify-write on loaded rows: two turns of one
session in flight at once still get distinct ``seq`` values and exact counts, and a
title the user sets meanwhile is never overwritten."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from pluggably.artifacts.models import Artifact
from pluggably.sessions.models import ChatSession, SessionMessage
from pluggably.users.models import User

# Bound parameters per IN list: far below SQLite's and asyncpg's limits.
_IN_CHUNK = 5_000


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: ChatSession | SessionMessage) -> None:
        self.session.add(row)
        await self.session.flush()

    # sessions
    async def owned(self, user_id: str, session_id: str) -> ChatSession | None:
        query = select(ChatSession).where(
            ChatSession.id == session_id, ChatSession.user_id == user_id
        )
        return await self.session.scalar(query)

    async def page(
        self,
        user_id: str,
        *,
        status: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> Sequence[ChatSession]:
        """Up to ``limit`` sessions, newest activity first (``last_used_at``, then id,
        both descending), strictly after the keyset ``after``. Only the summary columns
        are loaded: system prompts and state tokens can be large."""
        summary = load_only(
            ChatSession.id,
            ChatSession.title,
            ChatSession.status,
            ChatSession.created_at,
            ChatSession.last_used_at,
            ChatSession.message_count,
        )
        query = select(ChatSession).options(summary).where(ChatSession.user_id == user_id)
        if status is not None:
            query = query.where(ChatSession.status == status)
        if after is not None:
            used, last_id = after
            query = query.where(
                or_(
                    ChatSession.last_used_at < used,
                    and_(ChatSession.last_used_at == used, ChatSession.id < last_id),
                )
            )
        query = query.order_by(ChatSession.last_used_at.desc(), ChatSession.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def claim_seq(self, session_id: str, now: datetime, size: int) -> tuple[int, int] | None:
        """Reserve the next ``seq`` for one new message of ``size`` bytes: (seq, new
        message_count); None when the session no longer exists."""
        query = (
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(
                next_seq=ChatSession.next_seq + 1,
                message_count=ChatSession.message_count + 1,
                message_bytes=ChatSession.message_bytes + size,
                last_used_at=now,
            )
            .returning(ChatSession.next_seq, ChatSession.message_count)
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(query)).first()
        return (int(row[0]) - 1, int(row[1])) if row else None

    async def set_auto_title(self, session_id: str, title: str) -> bool:
        """Title an untitled session, unless a user has set (or cleared) one by hand."""
        query = (
            update(ChatSession)
            .where(
                ChatSession.id == session_id,
                ChatSession.title.is_(None),
                ChatSession.title_explicit.is_(False),
            )
            .values(title=title)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(query)) == 1

    async def count_removed(self, session_id: str, removed: int, size: int) -> int | None:
        """Lower ``message_count`` by ``removed`` and ``message_bytes`` by ``size``;
        the new count."""
        query = (
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(
                message_count=ChatSession.message_count - removed,
                message_bytes=ChatSession.message_bytes - size,
            )
            .returning(ChatSession.message_count)
            .execution_options(synchronize_session=False)
        )
        value = (await self.session.execute(query)).scalar()
        return None if value is None else int(value)

    async def system_prompt(self, session_id: str) -> str | None:
        query = select(ChatSession.system_prompt).where(ChatSession.id == session_id)
        return await self.session.scalar(query)

    async def set_state_tokens(
        self, session_id: str, tokens: dict[str, Any] | None, own_bytes: int
    ) -> None:
        query = (
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(state_tokens=tokens, own_bytes=own_bytes)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(query)

    async def delete_sessions(self, session_ids: Sequence[str]) -> int:
        """Sessions and their messages; how many sessions went. Messages are deleted
        explicitly rather than trusting ON DELETE CASCADE to be enabled."""
        removed = 0
        for start in range(0, len(session_ids), _IN_CHUNK):
            ids = list(session_ids[start : start + _IN_CHUNK])
            await self.session.execute(
                delete(SessionMessage).where(SessionMessage.session_id.in_(ids))
            )
            result = await self.session.execute(delete(ChatSession).where(ChatSession.id.in_(ids)))
            removed += _rowcount(result)
        return removed

    async def closed_before(self, cutoff: datetime, limit: int) -> Sequence[str]:
        return await self._oldest("closed", ChatSession.closed_at, cutoff, limit)

    async def idle_since(self, cutoff: datetime, limit: int) -> Sequence[str]:
        return await self._oldest("active", ChatSession.last_used_at, cutoff, limit)

    async def _oldest(
        self, status: str, moment: Any, cutoff: datetime, limit: int
    ) -> Sequence[str]:
        """The ids of sessions in ``status`` whose ``moment`` is before ``cutoff``,
        oldest first."""
        query = (
            select(ChatSession.id)
            .where(ChatSession.status == status, moment < cutoff)
            .order_by(moment, ChatSession.id)
            .limit(limit)
        )
        return (await self.session.execute(query)).scalars().all()

    # storage
    async def hold_owner(self, user_id: str) -> None:
        """Lock the user's row until the transaction ends (PostgreSQL; SQLite has one
        writer at a time anyway): one user's growing writes are checked one by one."""
        query = select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        # No autoflush: a pending change to a session row flushed here would lock that
        # row before the user's, the opposite of a turn's order (a deadlock).
        with self.session.no_autoflush:
            await self.session.execute(query)

    async def stored_bytes(self, user_id: str) -> int:
        total = func.coalesce(func.sum(ChatSession.message_bytes + ChatSession.own_bytes), 0)
        value = await self.session.scalar(select(total).where(ChatSession.user_id == user_id))
        return int(value or 0)

    # messages
    async def messages(self, session_id: str) -> Sequence[SessionMessage]:
        query = (
            select(SessionMessage)
            .where(SessionMessage.session_id == session_id)
            .order_by(SessionMessage.seq)
        )
        return (await self.session.execute(query)).scalars().all()

    async def newest_sizes(
        self, session_id: str, *, limit: int, before_seq: int | None
    ) -> Sequence[tuple[int, int]]:
        """(seq, size_bytes) of up to ``limit`` messages with ``seq < before_seq``,
        newest first: read from ``ix_messages_session_seq_size`` alone, no text."""
        query = select(SessionMessage.seq, SessionMessage.size_bytes).where(
            SessionMessage.session_id == session_id
        )
        if before_seq is not None:
            query = query.where(SessionMessage.seq < before_seq)
        query = query.order_by(SessionMessage.seq.desc()).limit(limit)
        return [(int(seq), int(size)) for seq, size in (await self.session.execute(query)).all()]

    async def messages_between(
        self, session_id: str, first_seq: int, last_seq: int
    ) -> Sequence[SessionMessage]:
        """Messages with ``first_seq <= seq <= last_seq``, oldest first."""
        query = (
            select(SessionMessage)
            .where(
                SessionMessage.session_id == session_id,
                SessionMessage.seq >= first_seq,
                SessionMessage.seq <= last_seq,
            )
            .order_by(SessionMessage.seq)
        )
        return (await self.session.execute(query)).scalars().all()

    async def message_seq(self, session_id: str, message_id: str) -> int | None:
        query = select(SessionMessage.seq).where(
            SessionMessage.id == message_id, SessionMessage.session_id == session_id
        )
        value = await self.session.scalar(query)
        return None if value is None else int(value)

    async def delete_message(self, session_id: str, message_id: str) -> int | None:
        """The deleted message's size; None when there was no such message."""
        query = (
            delete(SessionMessage)
            .where(SessionMessage.id == message_id, SessionMessage.session_id == session_id)
            .returning(SessionMessage.size_bytes)
        )
        value = (await self.session.execute(query)).scalar()
        return None if value is None else int(value)

    async def clear_messages(self, session_id: str) -> None:
        query = delete(SessionMessage).where(SessionMessage.session_id == session_id)
        await self.session.execute(query)

    # artifacts the messages point at
    async def artifacts(self, owner_id: str, artifact_ids: Iterable[str]) -> list[Artifact]:
        ids = sorted(set(artifact_ids))
        rows: list[Artifact] = []
        for start in range(0, len(ids), _IN_CHUNK):
            query = select(Artifact).where(
                Artifact.id.in_(ids[start : start + _IN_CHUNK]), Artifact.user_id == owner_id
            )
            rows.extend((await self.session.execute(query)).scalars().all())
        return rows
