"""GET /v1/usage and /v1/usage.csv: usage reports over the request records (API.md §9)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from pluggably.api.deps import DbSession, Reader, UsageReporting
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.usage.reports import as_csv
from pluggably.usage.schemas import UsageQuery, UsageReport

router = APIRouter(tags=["usage"], responses=AUTH_ERRORS)
Filters = Annotated[UsageQuery, Query()]
REPORT_ERRORS = error_responses(403, 404)
REPORT_ERRORS[403]["description"] = (
    "`forbidden`: another user's usage (`user_id`) asked by a caller who is not an "
    "administrator (a role matter, so 403 rather than 404), or a credential without "
    "the read scope"
)
REPORT_ERRORS[404]["description"] = "`not_found`: an administrator named a user that does not exist"
CSV_ANSWER = {
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "description": "A header row (key, name, requests, errors, prompt_tokens, "
    "completion_tokens, cost_usd), one line per report row, then the totals, keyed 'total'. "
    "A key or name starting with =, +, -, @, tab or carriage return is prefixed with a "
    "single quote, so that a spreadsheet shows it rather than running it as a formula.",
}


@router.get("/v1/usage", response_model=UsageReport, responses=REPORT_ERRORS)
async def usage(
    principal: Reader, session: DbSession, reports: UsageReporting, query: Filters
) -> UsageReport:
    """Requests, errors, tokens and cost summed per day, model, provider, API token or
    user over a window (default: the last 30 days; at most 366). Your own usage; an
    administrator may
    ask for any user's (``user_id``) or everyone's (``user_id=*``); anyone else asking for
    another user gets 403 ``forbidden``."""
    return await reports.report(session, principal, query)


@router.get(
    "/v1/usage.csv",
    response_class=Response,
    responses={200: CSV_ANSWER, **REPORT_ERRORS},
)
async def usage_csv(
    principal: Reader, session: DbSession, reports: UsageReporting, query: Filters
) -> Response:
    """The report of ``GET /v1/usage`` (same filters) as CSV."""
    report = await reports.report(session, principal, query)
    name = f"usage-by-{report.group_by}-{report.from_:%Y%m%d}-{report.to:%Y%m%d}.csv"
    return Response(
        as_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
