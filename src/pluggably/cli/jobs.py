"""``pluggably jobs …``: download jobs on a running server (admin)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pluggably.cli.common import AsJson, answer, size, when
from pluggably.cli.connection import Flags, Server, Token
from pluggably.downloads.schemas import DownloadJobInfo, JobList

jobs_app = typer.Typer(help="Download jobs on a running server (admin).")


def _jobs_table(jobs: list[DownloadJobInfo]) -> Table:
    table = Table("job", "model", "status", "progress", "size", "updated", "error")
    for j in jobs:
        known = j.bytes_total is not None or j.status == "completed"
        table.add_row(
            j.job_id,
            Text(j.model_id),
            j.status,
            f"{j.progress_pct:.0f}%" if known else "-",
            size(j.bytes_total),
            when(j.updated_at.isoformat()),
            Text(j.error or ""),
        )
    return table


def _jobs_lines(jobs: JobList) -> None:
    if not jobs.jobs:
        typer.echo("no download jobs")
    else:
        Console().print(_jobs_table(jobs.jobs))


def _list_jobs(ctx: typer.Context, server: str | None, token: str | None, as_json: bool) -> None:
    answer(ctx, server, token, as_json, lambda c: c.jobs.list(), _jobs_lines)


@jobs_app.callback(invoke_without_command=True)
def jobs_main(
    ctx: typer.Context, as_json: AsJson = False, server: Server = None, token: Token = None
) -> None:
    """Download jobs on a running server (admin). Without a command: list them."""
    ctx.obj = Flags(server, token)
    if ctx.invoked_subcommand is None:
        _list_jobs(ctx, None, None, as_json)


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context, as_json: AsJson = False, server: Server = None, token: Token = None
) -> None:
    """List download jobs, newest first."""
    _list_jobs(ctx, server, token, as_json)


@jobs_app.command("cancel")
def jobs_cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id (see `pluggably jobs`).")],
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Cancel a download: the transfer stops and the job ends cancelled."""

    def line(job: DownloadJobInfo) -> None:
        if job.status == "cancelled":
            typer.echo(f"job {job_id} cancelled")
        else:  # it ended before the cancel arrived
            typer.echo(f"job {job_id} is {job.status}; nothing to cancel")

    answer(ctx, server, token, as_json, lambda c: c.jobs.cancel(job_id), line)
