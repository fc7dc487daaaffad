"""Stored responses: the conversation a new response continues, storing a response
once it is answered, and reading, listing and deleting them for their owner.

A response's conversation is every earlier response of its chain, oldest first, each
as the items its request added followed by its output items; then the items of its own
request. ``instructions`` are not part of it: each request gives its own, as OpenAI's
API does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database
from pluggably.errors import InvalidParameter, NotFound
from pluggably.observability.logging import get_logger
from pluggably.responses import repository
from pluggably.responses.models import StoredResponse

log = get_logger("pluggably.responses")
# Responses in one chain at most: a longer conversation starts anew (the native
# request carries 2000 messages at most anyway).
MAX_CHAIN = 1000
# Stored responses deleted per transaction by the retention purge.
EXPIRE_BATCH = 500
# Characters of stored JSON one conversation may replay: what one request body may
# carry (max_body_bytes' default). Each response may be that large, so a chain is
# measured before it is loaded.
MAX_HISTORY_CHARS = 32 * 1024 * 1024

Item = dict[str, Any]


def conversation(rows: list[StoredResponse]) -> list[Item]:
    """The items of ``rows`` (oldest first): each one's input, then its output."""
    items: list[Item] = []
    for row in rows:
        items += row.input_items
        items += row.body.get("output") or []
    return items


def _about_previous(message: str) -> InvalidParameter:
    """A 400 naming ``previous_response_id``, as OpenAI's are."""
    loc = ["body", "previous_response_id"]
    return InvalidParameter(message, details=[{"loc": loc, "msg": message, "type": "value_error"}])


def _previous_not_found(previous_id: str) -> InvalidParameter:
    return _about_previous(f"Previous response with id '{previous_id}' not found.")


def _too_long(what: str) -> InvalidParameter:
    return _about_previous(
        f"This conversation {what}; start a new one (send the context you need as input)."
    )


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.")


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def expire(self, days: int) -> int:
        """Delete the responses stored more than ``days`` ago, in batches (each its own
        transaction, so a large purge never holds the table); how many went."""
        before = datetime.now(UTC) - timedelta(days=days)
        gone = 0
        while True:
            async with self.db.session() as session:
                count = await repository.expire(session, before, EXPIRE_BATCH)
            gone += count
            if count < EXPIRE_BATCH:
                break
        if gone:
            log.info("responses_expired", count=gone, days=days)
        return gone

    async def history(self, user_id: str, previous_id: str) -> list[Item]:
        """The conversation that ``previous_id`` ends. A response that is not the
        caller's (or not stored) is not found: 400, naming the field, as OpenAI says."""
        async with self.db.session() as session:
            count, chars = await repository.chain_size(session, user_id, previous_id, MAX_CHAIN + 1)
            if count == 0:
                raise _previous_not_found(previous_id)
            if count > MAX_CHAIN:
                raise _too_long(f"has more than {MAX_CHAIN} responses")
            if chars > MAX_HISTORY_CHARS:
                raise _too_long(f"holds more than {MAX_HISTORY_CHARS // 2**20} MiB")
            rows = await repository.chain(session, user_id, previous_id, MAX_CHAIN)
        if not rows:  # deleted in between
            raise _previous_not_found(previous_id)
        return conversation(rows)

    async def save(
        self, user_id: str, body: Item, previous_id: str | None, input_items: list[Item]
    ) -> None:
        """Store an answered response. The client has (or is getting) the answer
        already: a failure here is logged, never raised."""
        row = StoredResponse(
            id=body["id"],
            user_id=user_id,
            previous_response_id=previous_id,
            input_items=input_items,
            body=body,
        )
        try:
            async with self.db.session() as session:
                await repository.add(session, row)
        except Exception:
            log.exception("response_not_stored", response_id=body["id"])

    async def get(self, session: AsyncSession, user_id: str, response_id: str) -> Item:
        row = await repository.get(session, user_id, response_id)
        if row is None:
            raise _not_found(response_id)
        return row.body

    async def delete(self, session: AsyncSession, user_id: str, response_id: str) -> None:
        if not await repository.remove(session, user_id, response_id):
            raise _not_found(response_id)

    async def input_items(
        self, session: AsyncSession, user_id: str, response_id: str
    ) -> list[Item]:
        """The items that formed the response's input, oldest first: the conversation
        it continued, then its own request's items."""
        row = await repository.get(session, user_id, response_id)
        if row is None:
            raise _not_found(response_id)
        earlier: list[StoredResponse] = []
        if row.previous_response_id is not None:
            earlier = await repository.chain(session, user_id, row.previous_response_id, MAX_CHAIN)
        return conversation(earlier) + row.input_items
