"""Usage reports (API.md §9): ``client.usage(...)`` and ``client.usage_csv(...)``."""

from __future__ import annotations

from datetime import date
from typing import Any

from pluggably.client.binding import Bound, S, operation
from pluggably.client.calls import Call, Route, model, query_params, text
from pluggably.usage.schemas import GroupBy, UsageReport


def _filters(
    from_: date | str | None, to: date | str | None, group_by: GroupBy | None, user_id: str | None
) -> dict[str, Any]:
    """A date or datetime goes as ISO-8601 (a datetime needs its time zone)."""
    return query_params(
        **{
            "from": from_.isoformat() if isinstance(from_, date) else from_,
            "to": to.isoformat() if isinstance(to, date) else to,
            "group_by": group_by,
            "user_id": user_id,
        }
    )


class UsageCalls(Bound[S]):
    """The usage operations, at the client's top level."""

    @operation("GET", "/v1/usage")
    def usage(
        route: Route,
        *,
        from_: date | str | None = None,
        to: date | str | None = None,
        group_by: GroupBy | None = None,
        user_id: str | None = None,
    ) -> Call[UsageReport]:
        """Requests, errors, tokens and cost per day (or ``group_by`` model, provider,
        token, user) from ``from_`` (inclusive) to ``to`` (exclusive; a bare date is
        included whole); default: the last 30 days, at most 366. Your own usage; an
        administrator may pass another ``user_id``, or ``"*"`` for everyone."""
        params = _filters(from_, to, group_by, user_id)
        return Call(route, route.url(), model(UsageReport), params=params)

    @operation("GET", "/v1/usage.csv")
    def usage_csv(
        route: Route,
        *,
        from_: date | str | None = None,
        to: date | str | None = None,
        group_by: GroupBy | None = None,
        user_id: str | None = None,
    ) -> Call[str]:
        """The same report as CSV text: a header row, the rows, then the totals (key
        ``total``)."""
        params = _filters(from_, to, group_by, user_id)
        return Call(route, route.url(), text, params=params, headers={"Accept": "text/csv"})
