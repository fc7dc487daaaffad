"""What one user may store in sessions, and how it is counted.

Counted: the UTF-8 bytes of message text (with a turn's tool calls as JSON, the call
a tool turn answers, its reasoning and reasoning signature), of each session's
system prompt and of its state tokens (as JSON), plus a flat charge per message and
per session so that empty rows are not free. Each message row carries its size
(``size_bytes``); each session row carries the running total of its messages
(``message_bytes``, moved by the same UPDATEs that move ``message_count``) and the
size of its own fields (``own_bytes``, rewritten whenever they change). A user's
usage is one SUM over their session rows, read from the covering index
``ix_sessions_user_bytes`` (user_id, message_bytes, own_bytes) alone: an index-only
range, never the session rows (their prompts and state tokens) nor the messages. A
deleted session (purge, retention, account removal) takes its bytes with it: there
is no separate per-user counter to keep in step.

A write that may grow a user's storage runs inside ``StorageBound.guard``: it locks
the user's row first (PostgreSQL ``FOR NO KEY UPDATE``: that user's growing writes
queue behind each other, while inserts of rows that merely reference the user are
not blocked), writes, then sums and refuses when the sum is over the bound. The lock
comes before any write of the unit of work, so that the lock order is always the
user's row, then a session's: a write that locked a session row first and then
waited for the user's would deadlock with a turn doing the opposite. The raise rolls
the unit of work back, so nothing of the refused request is stored. On SQLite the
first write takes the database's write lock, so the sum that follows sees every
committed write and nothing else commits before ours. Answers are stored without a
check (a user's turn was accepted, its answer is kept): they can take a user past
the bound by what the requests in flight produce, and the next turn is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.errors import GatewayError, PayloadTooLarge
from pluggably.sessions.repository import SessionRepository

MESSAGE_CHARGE = 128  # bytes a message row costs besides its text
SESSION_CHARGE = 512  # bytes a session row costs besides its prompt and state tokens


class SessionStorageFull(GatewayError):
    code = "session_storage_full"
    status = 409
    default_message = "Your sessions use all the storage you are allowed."


def message_size(*texts: str | None) -> int:
    """A message's stored size: the UTF-8 bytes of its texts (content, and whichever of
    tool calls as JSON, tool call id, reasoning and signature it has), plus the charge."""
    return sum(len(t.encode()) for t in texts if t) + MESSAGE_CHARGE


def tokens_size(tokens: dict[str, Any] | None) -> int:
    return 0 if tokens is None else len(json.dumps(tokens).encode())


def own_size(system_prompt: str | None, tokens: dict[str, Any] | None) -> int:
    """What a session row counts for itself."""
    prompt = len(system_prompt.encode()) if system_prompt else 0
    return SESSION_CHARGE + prompt + tokens_size(tokens)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


@dataclass(frozen=True)
class StorageBound:
    per_user_bytes: int | None  # None: no bound
    request_bytes: int  # what one request may add

    def check_request(self, adding: int) -> None:
        if adding > self.request_bytes:
            raise PayloadTooLarge(
                f"This request would store {_mib(adding)} in the session; one request may "
                f"store at most {_mib(self.request_bytes)}. Send shorter turns, or fewer "
                "at once.",
                details={"bytes": adding, "limit_bytes": self.request_bytes},
            )

    async def hold(self, db_session: AsyncSession, user_id: str) -> None:
        """Lock the owner's row (PostgreSQL) before the unit of work writes anything:
        every write that takes the owner's lock takes it before a session's row (a turn
        locks the owner, then moves its session's counters), so that two of them queue
        behind each other instead of deadlocking. What is read after it is current:
        the owner's other writers of sizes wait for this transaction."""
        if self.per_user_bytes is not None:
            await SessionRepository(db_session).hold_owner(user_id)

    async def check(self, db_session: AsyncSession, user_id: str, adding: int) -> None:
        """After the writes (under ``hold``): SessionStorageFull, and the unit of work
        rolls back, if the user's sessions now hold more than the bound. ``adding``:
        what the writes were expected to add, for the message only."""
        if self.per_user_bytes is None:
            return
        await db_session.flush()
        used = await SessionRepository(db_session).stored_bytes(user_id)
        if used > self.per_user_bytes:
            before = max(used - adding, 0)
            raise SessionStorageFull(
                f"Your sessions hold {_mib(before)} and may hold at most "
                f"{_mib(self.per_user_bytes)}; this would take them over. Delete sessions you "
                "no longer need (DELETE /v1/sessions/{id}?purge=true) or reset them (POST "
                "/v1/sessions/{id}/reset), then try again. Closing a session keeps its "
                "history.",
                details={
                    "used_bytes": before,
                    "adding_bytes": adding,
                    "limit_bytes": self.per_user_bytes,
                },
            )

    @asynccontextmanager
    async def guard(
        self, db_session: AsyncSession, user_id: str, adding: int
    ) -> AsyncIterator[None]:
        """``hold``, the writes of the block, then ``check``."""
        await self.hold(db_session, user_id)
        yield
        await self.check(db_session, user_id, adding)
