"""``pluggably jobs …``: download jobs on a running server (admin)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pluggably.cli_client import Target, _api
from pluggably.cli_models import (
    DEFAULT_URL,
    AsJson,
    GroupServer,
    GroupToken,
    Server,
    Token,
    _print_json,
    _size,
    _target,
)

jobs_app = typer.Typer(help="Download jobs on a running server (admin).")


def _jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table("job", "model", "status", "progress", "size", "updated", "error")
    for j in jobs:
        pct = j.get("progress_pct")
        error = j.get("error") or {}
        table.add_row(
            j["job_id"],
            Text(j["model_id"]),
            j["status"],
            f"{pct:.0f}%" if pct is not None else "-",
            _size(j.get("bytes_total")),
            str(j.get("updated_at", ""))[:19].replace("T", " "),
            Text(error.get("message", "")),
        )
    return table


def _list_jobs(target: Target, as_json: bool) -> None:
    with _api(target) as api:
        jobs = api.call("GET", "/v1/jobs")["jobs"]
    if as_json:
        _print_json({"jobs": jobs})
    elif not jobs:
        typer.echo("no download jobs")
    else:
        Console().print(_jobs_table(jobs))


@jobs_app.callback(invoke_without_command=True)
def jobs_main(
    ctx: typer.Context,
    as_json: AsJson = False,
    server: GroupServer = DEFAULT_URL,
    token: GroupToken = None,
) -> None:
    """Download jobs on a running server (admin). Without a command: list them."""
    ctx.obj = Target(server, token)
    if ctx.invoked_subcommand is None:
        _list_jobs(ctx.obj, as_json)


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context, as_json: AsJson = False, server: Server = None, token: Token = None
) -> None:
    """List download jobs, newest first."""
    _list_jobs(_target(ctx, server, token), as_json)


@jobs_app.command("cancel")
def jobs_cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id (see `pluggably jobs`).")],
    server: Server = None,
    token: Token = None,
) -> None:
    """Cancel a download: the transfer stops and the job ends cancelled."""
    with _api(_target(ctx, server, token)) as api:
        job = api.call("DELETE", f"/v1/jobs/{quote(job_id, safe='')}")
    if job["status"] == "cancelled":
        typer.echo(f"job {job_id} cancelled")
    else:  # it ended before the cancel arrived
        typer.echo(f"job {job_id} is {job['status']}; nothing to cancel")
