"""The request records as a list (``GET /v1/requests``): the caller's own, newest first,
or for an administrator one user's or everyone's, paged by keyset on
(created_at desc, id desc) behind the opaque cursor that session lists use.

A request waiting in a local model's queue is stored as 'running' (its record is
written when it starts, generation/records.py); only this process's live state knows
it is queued, so the list reads that state too: exact for requests queued on this
replica, while another replica's queued ones show as running."""

from __future__ import annotations

import base64
import json

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.errors import Forbidden, NotFound
from pluggably.generation.list_schemas import EVERYONE, RequestList, RequestQuery, RequestSummary
from pluggably.generation.live import LiveRequests
from pluggably.generation.models import RequestRecord
from pluggably.generation.records import RequestRecords
from pluggably.sessions.paging import decode_cursor
from pluggably.users.models import User


def encode_cursor(last: RequestRecord) -> str:
    """The keyset of the page's last record, in the shape sessions/paging.py decodes."""
    raw = json.dumps({"t": last.created_at.isoformat(), "id": last.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def whose(principal: Principal, user_id: str | None) -> str:
    """The user whose requests are listed (or everyone): the caller's own by default;
    anyone else's is for administrators (a role matter, hence 403 rather than 404), as
    for usage reports."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if not principal.is_admin:
        raise Forbidden("Only administrators may list another user's requests.")
    return user_id


def _by_status(
    query: Select[RequestRecord], status: str, queued: list[str]
) -> Select[RequestRecord]:
    """Queued requests are stored as running: tell them apart by this process's queue."""
    if status == "queued":
        return query.where(RequestRecord.status == "running", RequestRecord.id.in_(queued))
    query = query.where(RequestRecord.status == status)
    if status == "running" and queued:
        query = query.where(RequestRecord.id.not_in(queued))
    return query


def _after(query: Select[RequestRecord], cursor: str | None) -> Select[RequestRecord]:
    after = decode_cursor(cursor)
    if after is None:
        return query
    made, last_id = after
    return query.where(
        or_(
            RequestRecord.created_at < made,
            and_(RequestRecord.created_at == made, RequestRecord.id < last_id),
        )
    )


class RequestListing:
    def __init__(self, records: RequestRecords, live: LiveRequests) -> None:
        self.records = records
        self.live = live

    async def page(
        self, session: AsyncSession, principal: Principal, query: RequestQuery
    ) -> RequestList:
        """One page of requests, newest first; next_cursor or None."""
        owner = whose(principal, query.user_id)
        statement = _after(select(RequestRecord), query.cursor)  # a bad cursor: 422 first
        # Before any read: on SQLite the transaction's snapshot starts at its first read,
        # and records are written in batches (generation/records.py).
        await self.records.flush()
        if owner not in (EVERYONE, principal.user_id) and await session.get(User, owner) is None:
            raise NotFound(f"No user '{owner}'.")
        if owner != EVERYONE:
            statement = statement.where(RequestRecord.user_id == owner)
        queued = [live.request_id for live in self.live.all() if live.status == "queued"]
        if query.status is not None:
            statement = _by_status(statement, query.status, queued)
        if query.model is not None:
            statement = statement.where(RequestRecord.model == query.model)
        statement = statement.order_by(RequestRecord.created_at.desc(), RequestRecord.id.desc())
        rows = (await session.execute(statement.limit(query.limit + 1))).scalars().all()
        page = rows[: query.limit]
        return RequestList(
            requests=[_summary(record, set(queued)) for record in page],
            next_cursor=encode_cursor(page[-1]) if len(rows) > query.limit else None,
        )


def _summary(record: RequestRecord, queued: set[str]) -> RequestSummary:
    status = "queued" if record.status == "running" and record.id in queued else record.status
    return RequestSummary.model_validate(
        {
            "request_id": record.id,
            "status": status,
            **{
                name: getattr(record, name)
                for name in RequestSummary.model_fields
                if name not in ("request_id", "status")
            },
        }
    )
