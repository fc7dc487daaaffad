"""Sessions: a user's conversations, their messages and their lifecycle.

Everything is owner-scoped: another user's session is ``session_not_found``, never
``forbidden``. Methods flush; the caller's unit of work commits."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from pluggably.artifacts.schemas import ArtifactInfo
from pluggably.artifacts.service import ArtifactService
from pluggably.db import Database, utcnow
from pluggably.errors import SessionClosed, SessionNotFound, ValidationFailed
from pluggably.observability.logging import get_logger
from pluggably.periodic import every
from pluggably.sessions.models import ChatSession, SessionMessage
from pluggably.sessions.repository import SessionRepository
from pluggably.sessions.schemas import (
    MessageInfo,
    Role,
    SessionCreate,
    SessionDetail,
    SessionInfo,
    SessionUpdate,
)
from pluggably.sessions.storage import StorageBound, message_size, own_size, tokens_size

if TYPE_CHECKING:
    from pluggably.config import Settings

log = get_logger("pluggably.sessions")

TITLE_CHARS = 50
RETENTION_BATCH = 500
PAGE_MESSAGES = 100  # a read without ``limit``
PAGE_BYTES = 8 * 1024 * 1024
_SPACE = re.compile(r"\s")


def auto_title(prompt: str) -> str:
    """The title an untitled session takes from its first prompt: the first non-empty
    line, at most 50 characters, cut at a word boundary (a single longer word is cut
    at 50). No ellipsis is added. Empty when the prompt has no visible text."""
    line = next((s.strip() for s in prompt.splitlines() if s.strip()), "")
    if len(line) <= TITLE_CHARS:
        return line
    # One character more than fits: a space there means the first 50 end a word.
    head = line[: TITLE_CHARS + 1]
    spaces = [m.start() for m in _SPACE.finditer(head)]
    return (head[: spaces[-1]] if spaces else head[:TITLE_CHARS]).rstrip()


# Cursors: keyset on (last_used_at desc, id desc), opaque to clients.
def encode_cursor(last: ChatSession) -> str:
    raw = json.dumps({"t": last.last_used_at.isoformat(), "id": last.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or set(data) != {"t", "id"}:
            raise TypeError
        moment, last_id = datetime.fromisoformat(data["t"]), data["id"]
        if moment.tzinfo is None or not isinstance(last_id, str):
            raise TypeError
        return moment, last_id
    except (ValueError, TypeError, binascii.Error):
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from the previous page.",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor"}],
        ) from None


def _not_found(session_id: str) -> SessionNotFound:
    return SessionNotFound(f"No session '{session_id}'; see GET /v1/sessions.")


def _info(chat: ChatSession) -> dict[str, Any]:
    return SessionInfo.model_validate(chat).model_dump()


def page_length(sizes: Sequence[tuple[int, int]], budget: int) -> int:
    """How many of ``sizes`` (newest first) a page holds: as many as fit ``budget``
    bytes, and at least one, so that paging always moves on."""
    total = 0
    for taken, (_, size) in enumerate(sizes):
        total += size
        if taken and total > budget:
            return taken
    return len(sizes)


class SessionService:
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
        self,
        db_session: AsyncSession,
        user_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[ChatSession], str | None]:
        """One page, newest activity first, in one query; next_cursor or None."""
        rows = await SessionRepository(db_session).page(
            user_id, status=status, after=decode_cursor(cursor), limit=limit + 1
        )
        page = list(rows[:limit])
        return page, encode_cursor(page[-1]) if len(rows) > limit else None

    async def get(self, db_session: AsyncSession, user_id: str, session_id: str) -> ChatSession:
        chat = await SessionRepository(db_session).owned(user_id, session_id)
        if chat is None:
            raise _not_found(session_id)
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

    async def accept_turns(
        self,
        db_session: AsyncSession,
        chat: ChatSession,
        turns: Sequence[tuple[str, str]],
        *,
        modality: str,
        state_tokens: dict[str, Any] | None,
    ) -> None:
        """Store a request's new (role, content) turns and its state tokens (None: keep
        the session's), all or nothing: refused when one request stores too much
        (PayloadTooLarge) or the owner's sessions would pass the storage bound
        (SessionStorageFull; also when they already have, even with nothing new)."""
        adding = sum(message_size(content) for _, content in turns) + tokens_size(state_tokens)
        self.bound.check_request(adding)
        async with self.bound.guard(db_session, chat.user_id, adding):
            for role, content in turns:
                await self.append(db_session, chat, role=role, content=content, modality=modality)
            if state_tokens is not None:
                await self.set_state_tokens(db_session, chat, state_tokens)

    async def history(self, db_session: AsyncSession, session_id: str) -> list[SessionMessage]:
        """Every message of the session, oldest first."""
        return list(await SessionRepository(db_session).messages(session_id))

    async def append(
        self,
        db_session: AsyncSession,
        chat: ChatSession,
        *,
        role: str,
        content: str,
        modality: str = "text",
        model: str | None = None,
        provider: str | None = None,
        artifacts: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
        request_id: str | None = None,
    ) -> SessionMessage:
        """Add one message at the end. ``chat`` is updated in memory (next_seq,
        message_count, last_used_at, an automatic title); it need not belong to
        ``db_session``. ``artifacts``: ``[{id, type, content_type}]``."""
        repo = SessionRepository(db_session)
        now = utcnow()
        size = message_size(content)
        claimed = await repo.claim_seq(chat.id, now, size)
        if claimed is None:
            raise _not_found(chat.id)
        seq, count = claimed
        message = SessionMessage(
            session_id=chat.id,
            seq=seq,
            role=role,
            content=content,
            modality=modality,
            model=model,
            provider=provider,
            artifacts=[dict(a) for a in artifacts or []],
            finish_reason=finish_reason,
            request_id=request_id,
            created_at=now,
            size_bytes=size,
        )
        await repo.add(message)
        _committed(chat, next_seq=seq + 1, message_count=count, last_used_at=now)
        if role == "user" and chat.title is None and not chat.title_explicit:
            title = auto_title(content)
            if title and await repo.set_auto_title(chat.id, title):
                _committed(chat, title=title)
        return message

    async def remove(self, db_session: AsyncSession, chat: ChatSession, message_id: str) -> None:
        """Delete one message of ``chat``; a message already gone is not an error."""
        repo = SessionRepository(db_session)
        size = await repo.delete_message(chat.id, message_id)
        if size is not None:
            count = await repo.count_removed(chat.id, 1, size)
            if count is not None:
                _committed(chat, message_count=count)

    async def set_state_tokens(
        self, db_session: AsyncSession, chat: ChatSession, tokens: dict[str, Any] | None
    ) -> None:
        repo = SessionRepository(db_session)
        # The prompt as stored now (under the owner's lock): a PATCH may have changed it
        # since ``chat`` was read, and own_bytes counts it.
        prompt = await repo.system_prompt(chat.id)
        own = own_size(prompt, tokens)
        await repo.set_state_tokens(chat.id, tokens, own)
        _committed(chat, system_prompt=prompt, state_tokens=tokens, own_bytes=own)

    # retention
    async def apply_retention(
        self,
        db_session: AsyncSession,
        *,
        closed_days: int | None,
        idle_days: int | None,
        now: datetime | None = None,
        batch: int = RETENTION_BATCH,
    ) -> int:
        """Purge closed sessions closed more than ``closed_days`` ago, then active
        sessions unused for more than ``idle_days``; None disables a rule. How many
        sessions were deleted."""
        now = now or utcnow()
        repo = SessionRepository(db_session)
        removed = 0
        rules = [(closed_days, repo.closed_before), (idle_days, repo.idle_since)]
        for days, select_ids in rules:
            if days is None:
                continue
            cutoff = now - timedelta(days=days)
            while ids := await select_ids(cutoff, batch):
                removed += await repo.delete_sessions(ids)
                if len(ids) < batch:
                    break
        return removed

    async def run_retention_loop(
        self,
        db: Database,
        *,
        closed_days: int | None,
        idle_days: int | None,
        interval_s: float,
    ) -> None:
        """Apply the retention policy every ``interval_s`` seconds until cancelled;
        returns at once when both rules are off."""
        if closed_days is None and idle_days is None:
            return

        async def once() -> None:
            async with db.session() as db_session:
                removed = await self.apply_retention(
                    db_session, closed_days=closed_days, idle_days=idle_days
                )
            if removed:
                log.info("sessions_expired", count=removed)
                await db.reclaimer.run()

        await every(interval_s, "session_retention", once)


def _refs(message: SessionMessage) -> list[dict[str, Any]]:
    """The message's artifact references that carry an id (stored JSON, read defensively)."""
    refs = message.artifacts or []
    return [r for r in refs if isinstance(r, dict) and isinstance(r.get("id"), str)]


def _committed(chat: ChatSession, **values: Any) -> None:
    """Mirror what an UPDATE already wrote, without marking the row dirty."""
    for name, value in values.items():
        set_committed_value(chat, name, value)
