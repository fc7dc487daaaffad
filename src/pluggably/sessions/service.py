"""Sessions: a user's conversations, their messages and their lifecycle.

Everything is owner-scoped: another user's session is ``session_not_found``, never
``forbidden``. Methods flush; the caller's unit of work commits. Writing turns lives
in ``messages``, the retention policy in ``retention``; this module holds the routes'
reads and lifecycle changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.artifacts.schemas import ArtifactInfo
from pluggably.artifacts.service import ArtifactService
from pluggably.db import utcnow
from pluggably.errors import SessionClosed, ValidationFailed
from pluggably.sessions.messages import SessionMessages, session_not_found
from pluggably.sessions.models import ChatSession, SessionMessage
from pluggably.sessions.paging import (
    PAGE_BYTES,
    PAGE_MESSAGES,
    decode_cursor,
    encode_cursor,
    page_length,
)
from pluggably.sessions.repository import SessionRepository
from pluggably.sessions.retention import SessionRetention
from pluggably.sessions.schemas import (
    MessageInfo,
    Role,
    SessionCreate,
    SessionDetail,
    SessionInfo,
    SessionList,
    SessionQuery,
    SessionSummary,
    SessionUpdate,
)
from pluggably.sessions.storage import StorageBound, own_size

if TYPE_CHECKING:
    from pluggably.config import Settings


def _info(chat: ChatSession) -> dict[str, Any]:
    return SessionInfo.model_validate(chat).model_dump()


class SessionService(SessionMessages, SessionRetention):
    """Sessions for the routes and for generation: reads and lifecycle here, turns
    from ``SessionMessages``, retention from ``SessionRetention``."""

    def __init__(self, bound: StorageBound | None = None, *, page_bytes: int = PAGE_BYTES) -> None:
        self.bound = bound or StorageBound(per_user_bytes=None, request_bytes=2**62)
        self.page_bytes = page_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionService:
        bound = StorageBound(
            per_user_bytes=settings.session_storage_bytes_per_user,
            request_bytes=settings.session_request_max_bytes,
        )
        return cls(bound, page_bytes=settings.session_page_max_bytes)

    # routes
    async def create(
        self, db_session: AsyncSession, user_id: str, body: SessionCreate
    ) -> ChatSession:
        now = utcnow()
        own = own_size(body.system_prompt, None)
        chat = ChatSession(
            user_id=user_id,
            title=body.title,
            title_explicit=body.title is not None,
            system_prompt=body.system_prompt,
            status="active",
            message_count=0,
            next_seq=0,
            created_at=now,
            last_used_at=now,
            message_bytes=0,
            own_bytes=own,
        )
        async with self.bound.guard(db_session, user_id, own):
            await SessionRepository(db_session).add(chat)
        return chat

    async def page(
        self, db_session: AsyncSession, user_id: str, query: SessionQuery
    ) -> SessionList:
        """One page, newest activity first, in one query; next_cursor or None."""
        limit = query.limit
        rows = await SessionRepository(db_session).page(
            user_id, status=query.status, after=decode_cursor(query.cursor), limit=limit + 1
        )
        page = list(rows[:limit])
        return SessionList(
            sessions=[SessionSummary.model_validate(r) for r in page],
            next_cursor=encode_cursor(page[-1]) if len(rows) > limit else None,
        )

    async def get(self, db_session: AsyncSession, user_id: str, session_id: str) -> ChatSession:
        chat = await SessionRepository(db_session).owned(user_id, session_id)
        if chat is None:
            raise session_not_found(session_id)
        return chat

    async def detail(
        self,
        db_session: AsyncSession,
        user_id: str,
        session_id: str,
        artifacts: ArtifactService,
        *,
        limit: int | None = None,
        before: str | None = None,
    ) -> SessionDetail:
        """The session with its messages, oldest first: the newest ``limit`` (100 when
        not given) before message ``before``, fewer when their text passes the page's
        byte budget; ``next_before`` when older ones remain. Artifact links are signed
        now."""
        repo = SessionRepository(db_session)
        chat = await self.get(db_session, user_id, session_id)
        before_seq = None
        if before is not None:
            before_seq = await repo.message_seq(chat.id, before)
            if before_seq is None:
                raise ValidationFailed(
                    f"Session '{session_id}' has no message '{before}'.",
                    details=[{"loc": ["query", "before"], "msg": "unknown message", "type": "id"}],
                )
        # Plan the page from (seq, size) alone, then read the text of what it holds.
        limit = limit or PAGE_MESSAGES
        sizes = await repo.newest_sizes(chat.id, limit=limit + 1, before_seq=before_seq)
        taken = page_length(sizes[:limit], self.page_bytes)
        messages: list[SessionMessage] = []
        if taken:
            messages = list(await repo.messages_between(chat.id, sizes[taken - 1][0], sizes[0][0]))
        next_before = messages[0].id if messages and taken < len(sizes) else None
        infos = await self._message_infos(repo, user_id, messages, artifacts)
        return SessionDetail(**_info(chat), messages=infos, next_before=next_before)

    async def _message_infos(
        self,
        repo: SessionRepository,
        user_id: str,
        messages: Sequence[SessionMessage],
        artifacts: ArtifactService,
    ) -> list[MessageInfo]:
        wanted = [ref["id"] for m in messages for ref in _refs(m)]
        now = artifacts.clock()
        found: dict[str, ArtifactInfo] = {}
        if wanted:
            for row in await repo.artifacts(user_id, wanted):
                if row.expires_at > now:
                    found[row.id] = artifacts.info(row)
        return [
            MessageInfo(
                id=m.id,
                role=cast(Role, m.role),
                content=m.content,
                modality=m.modality,
                model=m.model,
                provider=m.provider,
                artifacts=[found[ref["id"]] for ref in _refs(m) if ref["id"] in found],
                tool_calls=m.tool_calls or None,
                tool_call_id=m.tool_call_id,
                reasoning=m.reasoning,
                reasoning_signature=m.reasoning_signature,
                created_at=m.created_at,
            )
            for m in messages
        ]

    async def update(
        self, db_session: AsyncSession, user_id: str, session_id: str, body: SessionUpdate
    ) -> ChatSession:
        """Only the fields sent change; a title set here is explicit (never replaced by
        the automatic one), a null title lets the next prompt title the session."""
        prompt = "system_prompt" in body.model_fields_set
        if prompt:  # the owner's row before the session's, and sizes read after it
            await self.bound.hold(db_session, user_id)
        chat = await self.get(db_session, user_id, session_id)
        if "title" in body.model_fields_set:
            chat.title = body.title
            chat.title_explicit = body.title is not None
        grows = 0
        if prompt:
            own = own_size(body.system_prompt, chat.state_tokens)
            grows = own - chat.own_bytes
            chat.system_prompt, chat.own_bytes = body.system_prompt, own
        await db_session.flush()
        if grows > 0:  # a shorter prompt is always taken, even over the bound
            await self.bound.check(db_session, user_id, grows)
        return chat

    async def close(self, db_session: AsyncSession, user_id: str, session_id: str) -> ChatSession:
        """Close, keeping messages and state tokens; closing again changes nothing."""
        chat = await self.get(db_session, user_id, session_id)
        if chat.status != "closed":
            chat.status = "closed"
            chat.closed_at = utcnow()
            await db_session.flush()
        return chat

    async def purge(self, db_session: AsyncSession, user_id: str, session_id: str) -> SessionInfo:
        """Delete the session and its messages: the session as it was last, ``closed``
        (it takes no more turns), so that a purge answers like a close."""
        chat = await self.get(db_session, user_id, session_id)
        last = SessionInfo.model_validate(chat).model_copy(update={"status": "closed"})
        await SessionRepository(db_session).delete_sessions([chat.id])
        return last

    async def reset(self, db_session: AsyncSession, user_id: str, session_id: str) -> ChatSession:
        """Forget the conversation (messages, state tokens); keep title and system prompt.
        A closed session keeps its history for audit: resetting it is refused."""
        await self.bound.hold(db_session, user_id)  # own_bytes is rewritten from a current row
        chat = await self.get(db_session, user_id, session_id)
        if chat.status == "closed":
            raise SessionClosed(f"Session '{session_id}' is closed; its history is kept.")
        await SessionRepository(db_session).clear_messages(chat.id)
        chat.message_count = 0
        chat.message_bytes = 0
        chat.state_tokens = None
        chat.own_bytes = own_size(chat.system_prompt, None)
        await db_session.flush()
        return chat

    # generation (POST /v1/sessions/{id}/generate and /regenerate)
    async def for_generation(
        self, db_session: AsyncSession, user_id: str, session_id: str
    ) -> ChatSession:
        """The caller's active session: SessionNotFound when it is missing or someone
        else's, SessionClosed when it is closed."""
        chat = await self.get(db_session, user_id, session_id)
        if chat.status == "closed":
            raise SessionClosed(f"Session '{session_id}' is closed; start a new one.")
        return chat


def _refs(message: SessionMessage) -> list[dict[str, Any]]:
    """The message's artifact references that carry an id (stored JSON, read defensively)."""
    refs = message.artifacts or []
    return [r for r in refs if isinstance(r, dict) and isinstance(r.get("id"), str)]
