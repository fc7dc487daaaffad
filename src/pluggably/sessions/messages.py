"""Writing a session's conversation: its turns, its answers and its state tokens.

Each write moves the session row's counters (next_seq, message_count, message_bytes)
with one UPDATE and mirrors the result onto the caller's ``ChatSession`` without
marking it dirty, so the caller's copy need not belong to the writing unit of work."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from pluggably.db import utcnow
from pluggably.errors import SessionNotFound
from pluggably.messages import Message, ToolCall
from pluggably.sessions.models import ChatSession, SessionMessage
from pluggably.sessions.repository import SessionRepository
from pluggably.sessions.storage import StorageBound, message_size, own_size, tokens_size

TITLE_CHARS = 50
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


def session_not_found(session_id: str) -> SessionNotFound:
    return SessionNotFound(f"No session '{session_id}'; see GET /v1/sessions.")


def stored_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]] | None:
    """Tool calls as a message row keeps them (OpenAI's shape, as the session API shows
    them); None for a turn that called none."""
    if not calls:
        return None
    return [c.as_openai() for c in calls]


def _size(content: str, calls: list[dict[str, Any]] | None, *others: str | None) -> int:
    return message_size(content, json.dumps(calls) if calls else None, *others)


def turn_size(turn: Message) -> int:
    """What storing ``turn`` adds to its owner's sessions."""
    calls = stored_calls(turn.tool_calls)
    return _size(turn.text, calls, turn.tool_call_id, turn.reasoning, turn.reasoning_signature)


class SessionMessages:
    """The conversation-writing half of ``SessionService``."""

    bound: StorageBound

    async def accept_turns(
        self,
        db_session: AsyncSession,
        chat: ChatSession,
        turns: Sequence[Message],
        *,
        modality: str,
        state_tokens: dict[str, Any] | None,
    ) -> None:
        """Store a request's new turns (with their tool calls, tool call ids and
        reasoning; images are not kept) and its state tokens (None: keep the
        session's), all or nothing: refused when one request stores too much
        (PayloadTooLarge) or the owner's sessions would pass the storage bound
        (SessionStorageFull; also when they already have, even with nothing new)."""
        adding = sum(turn_size(t) for t in turns) + tokens_size(state_tokens)
        self.bound.check_request(adding)
        async with self.bound.guard(db_session, chat.user_id, adding):
            for turn in turns:
                await self.append(
                    db_session,
                    chat,
                    role=turn.role,
                    content=turn.text,
                    modality=modality,
                    tool_calls=turn.tool_calls,
                    tool_call_id=turn.tool_call_id,
                    reasoning=turn.reasoning,
                    reasoning_signature=turn.reasoning_signature,
                )
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
        tool_calls: Sequence[ToolCall] = (),
        tool_call_id: str | None = None,
        reasoning: str | None = None,
        reasoning_signature: str | None = None,
    ) -> SessionMessage:
        """Add one message at the end. ``chat`` is updated in memory (next_seq,
        message_count, last_used_at, an automatic title); it need not belong to
        ``db_session``. ``artifacts``: ``[{id, type, content_type}]``."""
        repo = SessionRepository(db_session)
        now = utcnow()
        calls = stored_calls(tool_calls)
        size = _size(content, calls, tool_call_id, reasoning, reasoning_signature)
        claimed = await repo.claim_seq(chat.id, now, size)
        if claimed is None:
            raise session_not_found(chat.id)
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
            tool_calls=calls,
            tool_call_id=tool_call_id,
            reasoning=reasoning,
            reasoning_signature=reasoning_signature,
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


def _committed(chat: ChatSession, **values: Any) -> None:
    """Mirror what an UPDATE already wrote, without marking the row dirty."""
    for name, value in values.items():
        set_committed_value(chat, name, value)
