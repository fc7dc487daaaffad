"""``pluggably requests …``: the caller's generation requests on a running server."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pluggably.cli.common import AsJson, answer, plain, remote, when
from pluggably.cli.connection import Flags, Server, Token
from pluggably.cli.output import TextOut, follow_events, note
from pluggably.generation.schemas import CancelResult, RequestDetails, RequestStatus

requests_app = typer.Typer(
    help="Generation requests on a running server: status, result, cancel, events.",
    no_args_is_help=True,
)

RequestId = Annotated[str, typer.Argument(help="The request's id (request_id of a response).")]


@requests_app.callback()
def requests_main(ctx: typer.Context, server: Server = None, token: Token = None) -> None:
    """Generation requests on a running server: status, result, cancel, events."""
    ctx.obj = Flags(server, token)


def _status_lines(status: RequestStatus) -> None:
    rows = {
        "request": status.request_id,
        "status": status.status,
        "model": status.model or "",
        "queue": "" if status.queue_position is None else str(status.queue_position),
        "created": when(status.created_at.isoformat()),
        "started": when(status.started_at.isoformat() if status.started_at else None),
        "finished": when(status.finished_at.isoformat() if status.finished_at else None),
    }
    if status.error:
        rows["error"] = f"{status.error.get('message', '')} ({status.error.get('code', '')})"
    for key, value in rows.items():
        if value:
            typer.echo(f"{key:<9} {value}")


@requests_app.command("status")
def status(
    ctx: typer.Context,
    request_id: RequestId,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Where a request is: queued (and at which position), running, or how it ended."""
    answer(ctx, server, token, as_json, lambda c: c.requests.status(request_id), _status_lines)


def _details_lines(details: RequestDetails) -> None:
    _status_lines(details)
    result = details.result or {}
    output = result.get("output") or {}
    files = len(output.get("images") or []) + len(output.get("artifacts") or [])
    if output.get("mesh"):
        files += 1
    if files:
        typer.echo(f"{'files':<9} {files} (`pluggably generate` writes them; see --json)")
    if output.get("text") is not None:
        typer.echo()
        typer.echo(output["text"])


@requests_app.command("show")
def show(
    ctx: typer.Context,
    request_id: RequestId,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """A request's status and, once it completed, its result."""
    answer(ctx, server, token, as_json, lambda c: c.requests.get(request_id), _details_lines)


@requests_app.command("cancel")
def cancel(
    ctx: typer.Context,
    request_id: RequestId,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Stop a queued or running request, printing the text it had produced."""

    def lines(result: CancelResult) -> None:
        if not result.cancelled:
            typer.echo(f"request {request_id} is {result.status}; nothing to cancel")
            return
        typer.echo(f"request {request_id} cancelled")
        partial = (result.partial_output or {}).get("text")
        if partial:
            note("partial output:")
            typer.echo(partial)

    answer(ctx, server, token, as_json, lambda c: c.requests.cancel(request_id), lines)


@requests_app.command("events")
def events(
    ctx: typer.Context,
    request_id: RequestId,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Follow a request until it ends.

    Its text as it is generated goes to stdout, its status changes to stderr; with
    --json, one event per line."""
    with remote(ctx, server, token) as client:
        stream = client.requests.events(request_id)
        if as_json:
            for event in stream:
                typer.echo(json.dumps(plain(event)))
            return
        out = TextOut()
        follow_events(stream, out, statuses=True)
        out.end()
