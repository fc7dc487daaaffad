"""``pluggably usage``: the caller's usage report from a running server (API.md §9)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pluggably.cli.common import AsJson, emit_json, fail, remote, when
from pluggably.cli.connection import Server, Token
from pluggably.usage.schemas import UsageCounts, UsageReport

# One command, no subcommands: the group's callback is the report.
usage_app = typer.Typer(subcommand_metavar="")


class GroupBy(StrEnum):
    day = "day"
    model = "model"
    provider = "provider"
    token = "token"  # noqa: S105 (the API token a request came with: a grouping)
    user = "user"


_MOMENT = "ISO-8601 date (a whole UTC day) or datetime with an offset"
From = Annotated[
    str | None,
    typer.Option("--from", show_default=False, help=f"Start, inclusive: {_MOMENT}."),
]
To = Annotated[
    str | None,
    typer.Option(
        "--to",
        show_default=False,
        help=f"End: {_MOMENT}; a date includes its day, a datetime is excluded. [now]",
    ),
]
Group = Annotated[GroupBy, typer.Option("--group-by", "-g", help="What one row sums.")]
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        show_default=False,
        help="Administrators: this user id's usage, or '*' for everyone's.",
    ),
]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print the server's CSV instead.")]
_NAMED = {GroupBy.token: "name", GroupBy.user: "username"}


def _cost(value: float) -> str:
    """Dollars to a hundredth of a micro-dollar, without trailing zeros (0.0000027, 1.5)."""
    return f"{value:.8f}".rstrip("0").rstrip(".")


def _counts(counts: UsageCounts) -> list[str]:
    return [
        str(counts.requests),
        str(counts.errors),
        str(counts.prompt_tokens),
        str(counts.completion_tokens),
        _cost(counts.cost_usd),
    ]


def _span(report: UsageReport) -> str:
    return f"from {when(report.from_.isoformat())} to {when(report.to.isoformat())} UTC"


def _table(report: UsageReport) -> Table:
    group = GroupBy(report.group_by)
    whose = "everyone" if report.user_id == "*" else report.user_id
    title = f"usage of {whose} {_span(report)}"
    named = group in _NAMED
    head = [group.value, *([_NAMED[group]] if named else [])]
    numbers = ("requests", "errors", "prompt tokens", "completion tokens", "cost (USD)")
    table = Table(*head, title=title, show_footer=True)
    for number in numbers:
        table.add_column(number, justify="right")
    for row in report.rows:
        names = [Text(row.name or "-")] if named else []
        table.add_row(Text(row.key or "-"), *names, *_counts(row))
    for column, footer in zip(
        table.columns, ["total", *([""] if named else []), *_counts(report.totals)], strict=True
    ):
        column.footer = footer
    return table


@usage_app.callback(invoke_without_command=True)
def usage(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    group_by: Group = GroupBy.day,
    user: User = None,
    as_csv: AsCsv = False,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Requests, errors, tokens and cost per day (or model, provider, API token, user),
    by default over the last 30 days (at most 366): your own, or (administrators) --user's."""
    if as_csv and as_json:
        raise fail("--csv and --json: choose one", 2)
    with remote(ctx, server, token) as client:
        if as_csv:
            csv = client.usage_csv(from_=from_, to=to, group_by=group_by.value, user_id=user)
            typer.echo(csv, nl=False)
            return
        report = client.usage(from_=from_, to=to, group_by=group_by.value, user_id=user)
    if as_json:
        emit_json(report)
    elif not report.rows:
        typer.echo(f"no requests {_span(report)}")
    else:
        Console().print(_table(report))
