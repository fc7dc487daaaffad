"""A generation inside a session: the conversation it continues (or re-answers), and
the turns it leaves behind.

- The user's turn is stored when the request is accepted, in the same transaction
  that reads the history: it is never lost, whatever happens to the answer.
- The answer is stored when it completes, with its final text (streamed or not) and
  the artifacts it produced; a cancelled answer keeps its partial text, marked
  ``cancelled``; a failed one stores nothing.
- An answer that called tools is stored with its calls (and any reasoning); the tool
  results come as the next request's ``tool`` turns, which continue the session
  without a user turn when they answer the calls of its last assistant turn.
- Regenerate re-answers the last user turn: ``append`` adds the new answer after the
  old one; ``replace`` removes the old answer (with the tool calls and results that
  followed the user turn) only once the new one has succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database
from pluggably.errors import InvalidParameter, SessionNotFound
from pluggably.generation import inputs
from pluggably.generation.context import (
    answered_calls_only,
    history_messages,
    stored_tool_calls,
)
from pluggably.generation.schemas import GenerateRequest, Output
from pluggably.messages import Message, ToolCall
from pluggably.observability.logging import get_logger
from pluggably.sessions.models import ChatSession, SessionMessage
from pluggably.sessions.service import SessionService

RegenerateMode = Literal["replace", "append"]
log = get_logger("pluggably.sessions")


@dataclass
class Turn:
    """What a plan needs to know of its session."""

    chat_id: str
    messages: list[Message]  # system prompt + history + the new turn, untrimmed
    new: list[Message] = field(default_factory=list)  # the turns the request adds
    replace_ids: list[str] = field(default_factory=list)
    state_tokens: dict[str, Any] | None = None
    regenerate: bool = False
    model: str | None = None  # regenerate: the model that answered last
    chat: ChatSession | None = None  # the row, while the preparing transaction is open


class SessionTurns:
    def __init__(self, sessions: SessionService, db: Database) -> None:
        self.sessions = sessions
        self.db = db

    async def open(
        self,
        db_session: AsyncSession,
        user_id: str,
        body: GenerateRequest,
        regenerate: RegenerateMode | None,
    ) -> Turn:
        assert body.session_id is not None
        chat = await self.sessions.for_generation(db_session, user_id, body.session_id)
        history = await self.sessions.history(db_session, chat.id)
        system_prompt = body.system_prompt or chat.system_prompt
        system = [Message("system", system_prompt)] if system_prompt else []
        if regenerate is not None:
            last_user = max((i for i, m in enumerate(history) if m.role == "user"), default=None)
            if last_user is None:
                raise InvalidParameter("The session has no user message to answer again.")
            after = history[last_user + 1 :]
            answered = [m for m in after if m.role == "assistant"]
            return Turn(
                chat_id=chat.id,
                chat=chat,
                messages=system + answered_calls_only(history_messages(history[: last_user + 1])),
                replace_ids=[m.id for m in after] if regenerate == "replace" else [],
                state_tokens=chat.state_tokens,
                regenerate=True,
                model=answered[-1].model if answered else None,
            )
        new = _new_turns(body, history)
        return Turn(
            chat_id=chat.id,
            chat=chat,
            messages=system + answered_calls_only(history_messages(history) + new),
            new=new,
            state_tokens=body.state_tokens if body.state_tokens is not None else chat.state_tokens,
        )

    async def accept(
        self, db_session: AsyncSession, turn: Turn, body: GenerateRequest, modality: str
    ) -> None:
        """Store the request's new turns (none for regenerate) and the state tokens, in
        the transaction that opened the turn: all or nothing, within the owner's session
        storage bound (a regenerate is refused too when the owner is over it)."""
        chat = turn.chat
        assert chat is not None
        turn.chat = None  # the row belongs to that transaction only
        await self.sessions.accept_turns(
            db_session, chat, turn.new, modality=modality, state_tokens=body.state_tokens
        )

    async def answered(
        self,
        turn: Turn,
        *,
        model: str,
        provider: str,
        modality: str,
        output: Output,
        finish_reason: str,
        request_id: str,
    ) -> None:
        """Store the answer; a successful regenerate-replace drops the old answer."""
        try:
            async with self.db.session() as db_session:
                chat = await db_session.get(ChatSession, turn.chat_id)
                if chat is None:
                    raise SessionNotFound(turn.chat_id)
                if finish_reason != "cancelled":
                    for message_id in turn.replace_ids:
                        await self.sessions.remove(db_session, chat, message_id)
                await self.sessions.append(
                    db_session,
                    chat,
                    role="assistant",
                    content=output.text or "",
                    modality=modality,
                    model=model,
                    provider=provider,
                    artifacts=[
                        {"id": a.id, "type": a.type, "content_type": a.content_type}
                        for a in output.artifacts
                    ],
                    finish_reason=finish_reason,
                    request_id=request_id,
                    tool_calls=[
                        ToolCall(c.id, c.function.name, c.function.arguments)
                        for c in output.tool_calls
                    ],
                    reasoning=output.reasoning,
                    reasoning_signature=output.reasoning_signature,
                )
        except SessionNotFound:  # purged while the answer was produced
            log.info("session_gone_before_answer", session_id=turn.chat_id)


def _new_turns(body: GenerateRequest, history: list[SessionMessage]) -> list[Message]:
    """The turns a request adds to the session. Tool results alone (no user turn)
    continue the session when they answer calls of its last assistant turn."""
    sent = body.input.messages or []
    if not sent or body.input.images or any(m.role != "tool" for m in sent):
        return [m for m in inputs.conversation(body) if m.role != "system"]
    pending = _pending_calls(history)
    unknown = [m.tool_call_id for m in sent if m.tool_call_id not in pending]
    if unknown:
        calls = ", ".join(sorted(pending)) or "none"
        raise InvalidParameter(
            f"input.messages holds only tool results, and the session's last assistant turn "
            f"made no call {', '.join(map(str, unknown))} (its open calls: {calls}). Send the "
            "results of its calls, or a user message."
        )
    return [inputs.message_of(m) for m in sent]


def _pending_calls(history: list[SessionMessage]) -> set[str]:
    """The ids of the calls of the session's last assistant turn, when only tool results
    follow it."""
    for message in reversed(history):
        if message.role == "assistant":
            return {call.id for call in stored_tool_calls(message.tool_calls)}
        if message.role != "tool":
            break
    return set()
