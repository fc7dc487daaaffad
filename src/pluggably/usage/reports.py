"""Usage reports (API.md §9): the request records of a window, summed per day, model,
provider, API token or user in one GROUP BY on the database (never Python over every
row), and the same report as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, SQLColumnExpression, String, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.db import Base, utcnow
from pluggably.errors import Forbidden, NotFound, ValidationFailed
from pluggably.generation.models import RequestRecord
from pluggably.generation.records import RequestRecords
from pluggably.usage.schemas import (
    EVERYONE,
    GroupBy,
    UsageCounts,
    UsageQuery,
    UsageReport,
    UsageRow,
)
from pluggably.users.models import ApiToken, User

DEFAULT_DAYS = 30
# The longest window, a leap year: a report reads every record of its window.
MAX_DAYS = 366
CSV_COLUMNS = (
    "key",
    "name",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
)
TOTAL_KEY = "total"  # the key of the CSV's last row, the totals
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV
# Injection"); token names and model ids are the callers' own text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _start_of(moment: date) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time(), UTC)


def _end_of(moment: date) -> datetime:
    """A bare date ends with its day (the report includes it); an instant is excluded."""
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment + timedelta(days=1), time(), UTC)


def window(query: UsageQuery, now: datetime) -> tuple[datetime, datetime]:
    """The report's [start, end): ``to`` defaults to now, ``from`` to 30 days before it;
    at most MAX_DAYS long."""
    end = _end_of(query.to) if query.to is not None else now
    start = _start_of(query.from_) if query.from_ is not None else end - timedelta(DEFAULT_DAYS)
    if start >= end:
        _invalid_from("'from' must be earlier than 'to'.")
    if end - start > timedelta(MAX_DAYS):
        _invalid_from(f"A report covers at most {MAX_DAYS} days; ask for several windows.")
    return start, end


def _invalid_from(message: str) -> NoReturn:
    details = [{"loc": ["query", "from"], "msg": message, "type": "value_error"}]
    raise ValidationFailed(message, details=details)


def _day(dialect: str) -> ColumnElement[str]:
    """The UTC day of a record as YYYY-MM-DD. SQLite stores UTC text
    ('2025-05-01 12:00:00.000000', db/base.py); PostgreSQL a timestamptz, read in UTC
    whatever the session's time zone."""
    if dialect == "sqlite":
        return func.substr(RequestRecord.created_at, 1, 10, type_=String)
    in_utc = func.timezone("UTC", RequestRecord.created_at)
    return func.to_char(in_utc, "YYYY-MM-DD", type_=String)


Join = tuple[type[Base], ColumnElement[bool]]


def _key_and_name(
    group_by: GroupBy, dialect: str
) -> tuple[SQLColumnExpression[Any], SQLColumnExpression[Any] | None, Join | None]:
    """The grouping column, the column naming it (if any) and the table that holds it."""
    if group_by == "day":
        return _day(dialect), None, None
    if group_by == "model":
        return RequestRecord.model, None, None
    if group_by == "provider":
        return RequestRecord.provider, None, None
    if group_by == "token":
        return (
            RequestRecord.token_id,
            ApiToken.name,
            (ApiToken, ApiToken.id == RequestRecord.token_id),
        )
    return RequestRecord.user_id, User.username, (User, User.id == RequestRecord.user_id)


async def grouped(
    session: AsyncSession,
    group_by: GroupBy,
    start: datetime,
    end: datetime,
    user_id: str | None,
) -> list[UsageRow]:
    """One row per key of the records created in [start, end) (of ``user_id``, or of
    everyone when None)."""
    key, name, joined = _key_and_name(group_by, session.get_bind().dialect.name)
    columns = [
        key.label("key"),
        func.count().label("requests"),
        func.coalesce(func.sum(case((RequestRecord.status == "failed", 1), else_=0)), 0),
        func.coalesce(func.sum(RequestRecord.prompt_tokens), 0),
        func.coalesce(func.sum(RequestRecord.completion_tokens), 0),
        func.coalesce(func.sum(RequestRecord.cost_usd), 0.0),
    ]
    groups = [key]
    if name is not None:
        columns.insert(1, name.label("name"))
        groups.append(name)
    query = select(*columns).where(
        RequestRecord.created_at >= start, RequestRecord.created_at < end
    )
    if joined is not None:
        query = query.outerjoin(*joined)
    if user_id is not None:
        query = query.where(RequestRecord.user_id == user_id)
    result = await session.execute(query.group_by(*groups))
    return [_row(values, name is not None) for values in result.all()]


def _row(values: Sequence[Any], named: bool) -> UsageRow:
    key, *rest = values
    label = rest.pop(0) if named else None
    requests, errors, prompt, completion, cost = rest
    return UsageRow(
        key=key,
        name=label,
        requests=int(requests),
        errors=int(errors),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cost_usd=float(cost),
    )


def ordered(rows: list[UsageRow], group_by: GroupBy) -> list[UsageRow]:
    """Days in order; anything else most expensive first, then most used, then by key."""
    if group_by == "day":
        return sorted(rows, key=lambda r: r.key or "")
    return sorted(rows, key=lambda r: (-r.cost_usd, -r.requests, r.key is None, r.key or ""))


def totals(rows: list[UsageRow]) -> UsageCounts:
    """The sum of the rows, in their order (so it is exactly what a reader adding them gets)."""
    return UsageCounts(
        requests=sum(r.requests for r in rows),
        errors=sum(r.errors for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cost_usd=sum((r.cost_usd for r in rows), 0.0),
    )


class UsageReports:
    """Reports over the request records. Records are written in batches
    (generation/records.py): a report writes what is queued first, so it counts every
    request answered before it was asked."""

    def __init__(self, records: RequestRecords, clock: Callable[[], datetime] = utcnow) -> None:
        self.records = records
        self.clock = clock

    async def report(
        self, session: AsyncSession, principal: Principal, query: UsageQuery
    ) -> UsageReport:
        start, end = window(query, self.clock())
        whose = _whose(principal, query.user_id)
        # Before any read: on SQLite the transaction's snapshot starts at its first read.
        await self.records.flush()
        if whose not in (EVERYONE, principal.user_id) and await session.get(User, whose) is None:
            raise NotFound(f"No user '{whose}'.")
        rows = await grouped(
            session, query.group_by, start, end, None if whose == EVERYONE else whose
        )
        rows = ordered(rows, query.group_by)
        return UsageReport(
            from_=start,
            to=end,
            group_by=query.group_by,
            user_id=whose,
            rows=rows,
            totals=totals(rows),
        )


def _whose(principal: Principal, user_id: str | None) -> str:
    """The user the report is about (or everyone): the caller's own by default; anyone
    else's is for administrators (a role matter, hence 403 rather than 404)."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if not principal.is_admin:
        raise Forbidden("Only administrators may see another user's usage.")
    return user_id


def _cell(text: str | None) -> str:
    """Text as a spreadsheet shows it, never runs it: a would-be formula gets a leading
    single quote. An empty cell is null."""
    if text is None:
        return ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def as_csv(report: UsageReport) -> str:
    """The report as CSV: a header row, one line per row, then the totals, keyed 'total'.
    An empty cell is null; a key or name that a spreadsheet would take for a formula
    starts with a single quote; cost_usd is written exactly (as Python's repr of the
    float)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*report.rows, UsageRow(key=TOTAL_KEY, **report.totals.model_dump())]:
        writer.writerow(
            [
                _cell(row.key),
                _cell(row.name),
                row.requests,
                row.errors,
                row.prompt_tokens,
                row.completion_tokens,
                repr(row.cost_usd),
            ]
        )
    return out.getvalue()
