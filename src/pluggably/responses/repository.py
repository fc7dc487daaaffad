"""Queries on stored responses. Every read is by owner: another user's response is
not found, whoever asks for it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CTE, Text, cast, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pluggably.responses.models import StoredResponse


async def get(session: AsyncSession, user_id: str, response_id: str) -> StoredResponse | None:
    row = await session.get(StoredResponse, response_id)
    return row if row is not None and row.user_id == user_id else None


def _walk(user_id: str, response_id: str, limit: int) -> CTE:
    """``response_id`` and the responses it continues (``depth`` 0 for itself), at
    most ``limit``, by owner: the walk stops at a response gone or someone else's."""
    start = (
        select(StoredResponse.id, StoredResponse.previous_response_id, literal(0).label("depth"))
        .where(StoredResponse.id == response_id, StoredResponse.user_id == user_id)
        .cte("response_chain", recursive=True)
    )
    parent = aliased(StoredResponse)
    return start.union_all(
        select(parent.id, parent.previous_response_id, start.c.depth + 1)
        .join(start, parent.id == start.c.previous_response_id)
        .where(parent.user_id == user_id, start.c.depth < limit - 1)
    )


async def chain(
    session: AsyncSession, user_id: str, response_id: str, limit: int
) -> list[StoredResponse]:
    """``response_id`` and the responses it continues, oldest first: at most ``limit``
    of them (the newest), in one recursive query. Empty when ``response_id`` is not
    the user's."""
    walk = _walk(user_id, response_id, limit)
    rows = await session.scalars(
        select(StoredResponse)
        .join(walk, StoredResponse.id == walk.c.id)
        .order_by(walk.c.depth.desc())
    )
    return list(rows)


async def chain_size(
    session: AsyncSession, user_id: str, response_id: str, limit: int
) -> tuple[int, int]:
    """How many responses :func:`chain` would load, and the characters of their
    items and bodies as stored JSON: measured by the database, nothing loaded."""
    walk = _walk(user_id, response_id, limit)
    size = func.length(cast(StoredResponse.input_items, Text)) + func.length(
        cast(StoredResponse.body, Text)
    )
    query = select(func.count(), func.coalesce(func.sum(size), 0)).join(
        walk, StoredResponse.id == walk.c.id
    )
    count, chars = (await session.execute(query)).one()
    return int(count), int(chars)


async def add(session: AsyncSession, row: StoredResponse) -> None:
    session.add(row)
    await session.flush()


async def remove(session: AsyncSession, user_id: str, response_id: str) -> bool:
    result = await session.execute(
        delete(StoredResponse).where(
            StoredResponse.id == response_id, StoredResponse.user_id == user_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def expire(session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` responses created before ``before``; how many went."""
    oldest = (
        select(StoredResponse.id)
        .where(StoredResponse.created_at < before)
        .order_by(StoredResponse.created_at)
        .limit(batch)
    )
    result = await session.execute(delete(StoredResponse).where(StoredResponse.id.in_(oldest)))
    return int(getattr(result, "rowcount", 0) or 0)
