"""Usage reports (API.md §9): the query of ``GET /v1/usage`` and the report it answers.

Pydantic only: the Python client reads these too, without the server's machinery."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

GroupBy = Literal["day", "model", "provider", "token", "user"]
EVERYONE = "*"
# The years a window's ends may fall in: room on both sides for the day added to a
# bare 'to' and the 30 days taken off 'to' for a missing 'from', which would overflow
# Python's dates at year 1 and 9999.
YEARS = range(1970, 9999)


def _parsed(value: Any) -> date | datetime:
    if isinstance(value, date):  # a datetime too
        return value
    if isinstance(value, str) and len(value.strip()) <= 10:  # 2025-05-01, 20250501
        return date.fromisoformat(value.strip())
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip())
    raise ValueError("expected an ISO-8601 date or datetime")


def _moment(value: Any) -> date | datetime:
    """A bare date (a whole UTC day) or an instant; an instant must say its offset, since
    a report's days are UTC days and a guess would shift them."""
    moment = _parsed(value)
    if moment.year not in YEARS:
        raise ValueError(f"the year must be from {YEARS[0]} to {YEARS[-1]}")
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise ValueError("a datetime needs its offset (Z or +hh:mm); or give a bare date")
    return moment.astimezone(UTC)


Moment = Annotated[
    date | datetime,
    PlainValidator(_moment),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO-8601 date (YYYY-MM-DD, a whole UTC day) or datetime "
            "with an offset (2025-05-01T12:00:00Z)",
            "examples": ["2025-05-01", "2025-05-01T12:00:00Z"],
        }
    ),
]


class UsageQuery(BaseModel):
    """The filters of ``GET /v1/usage`` and ``/v1/usage.csv`` (query parameters).

    ``from`` includes its moment (a date: from that day's start); ``to`` excludes its
    moment, but a bare date ``to`` includes that whole day (``from=2025-05-01&to=2025-05-31``
    is May). Without ``to``: now; without ``from``: 30 days before ``to``. A window spans
    at most 366 days (a calendar year; longer: several reports)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: Moment | None = Field(None, alias="from", description="Start (inclusive).")
    to: Moment | None = Field(
        None, description="End: exclusive for a datetime, inclusive for a bare date."
    )
    group_by: GroupBy = Field("day", description="What one row sums.")
    user_id: str | None = Field(
        None,
        max_length=40,
        description="Whose requests: yours by default; an administrator may name any "
        "user, or '*' for everyone.",
    )


class UsageCounts(BaseModel):
    requests: int = Field(description="Request records (any status).")
    errors: int = Field(description="Records with status 'failed'.")
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = Field(description="The records' cost_usd summed (none counts as 0).")


class UsageRow(UsageCounts):
    key: str | None = Field(
        description="The day (YYYY-MM-DD, UTC), the model, the provider, the API token id "
        "(null: requests made without one: a login, the admin key) or the user id; null "
        "also for the records that name no model or provider (a request that failed on "
        "every candidate)."
    )
    name: str | None = Field(
        None, description="The username (group_by=user) or the API token's name (group_by=token)."
    )


class UsageReport(BaseModel):
    """Rows sorted by day ascending (group_by=day), else by cost_usd descending, then
    requests descending, then key; ``totals`` is the sum of the rows."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", description="The window's start (inclusive, UTC).")
    to: datetime = Field(description="The window's end (exclusive, UTC).")
    group_by: GroupBy
    user_id: str = Field(description="Whose requests: a user id, or '*' for everyone.")
    rows: list[UsageRow]
    totals: UsageCounts
