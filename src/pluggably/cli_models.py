"""``pluggably models …`` and ``pluggably jobs …``: a client of a running server over HTTP.

Routes and bodies are those of API.md §4. Every command takes ``--server`` and ``--token``,
either after the group (``pluggably models --server URL list``) or after the command
(``pluggably models list --server URL``); the command's own value wins.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from pluggably.cli_client import Api, CliError, Target, _api

DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
# The server sends a keep-alive comment every 15 s on an idle stream: four missed ones
# mean the connection is gone, not that the download is slow.
# A stream can end without a terminal frame (a proxy's idle cut, a server restart that
# resumes the job): reconnect this many times before giving up.
MAX_RECONNECTS = 5
PAGE_SIZE = 200  # the most GET /v1/models returns per page

models_app = typer.Typer(
    help="Search, download, list and delete models on a running server.", no_args_is_help=True
)


class Modality(StrEnum):
    text = "text"
    image = "image"
    three_d = "3d"


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


GroupServer = Annotated[
    str,
    typer.Option("--server", envvar="PLUGGABLY_URL", callback=_check_url, help="Server URL."),
]
GroupToken = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="PLUGGABLY_TOKEN", show_default=False, help="API token or admin key."
    ),
]
# Per-command copies without defaults, so that an unset one falls back to the group's value.
Server = Annotated[
    str | None,
    typer.Option(
        "--server", callback=_check_url, show_default=False, help="Server URL [$PLUGGABLY_URL]."
    ),
]
Token = Annotated[
    str | None,
    typer.Option("--token", show_default=False, help="API token [$PLUGGABLY_TOKEN]."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead.")]


def _target(ctx: typer.Context, server: str | None, token: str | None) -> Target:
    group = ctx.find_object(Target)
    if group is None:  # the command was invoked without its group (embedding, tests)
        env_url = _check_url(os.environ.get("PLUGGABLY_URL")) or DEFAULT_URL
        group = Target(env_url, os.environ.get("PLUGGABLY_TOKEN"))
    return Target(server or group.server, token or group.token)


@models_app.callback()
def models_main(
    ctx: typer.Context, server: GroupServer = DEFAULT_URL, token: GroupToken = None
) -> None:
    """Search, download, list and delete models on a running server."""
    ctx.obj = Target(server, token)


def _model_path(model_id: str) -> str:
    # Model ids contain '/' and ':' and the routes take them as a path: keep those as is.
    return "/v1/models/" + quote(model_id, safe="/:")


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _size(value: int | None) -> str:
    return decimal(value) if value is not None else "-"


# -- models search --------------------------------------------------------------------------


def _files_cell(files: list[dict[str, Any]] | None) -> str:
    return "\n".join(f"{f['filename']} ({_size(f.get('size_bytes'))})" for f in files or [])


def _search_table(results: list[dict[str, Any]]) -> Table:
    table = Table("id", "downloads", "likes", "modality", "gated", "GGUF files")
    for r in results:
        table.add_row(
            Text(r["id"]),  # Text, not a markup string: repo ids may hold '[' ']'
            f"{r.get('downloads') or 0:,}",
            f"{r.get('likes') or 0:,}",
            ", ".join(r.get("modality_hints") or []),
            "yes" if r.get("gated") else "",
            Text(_files_cell(r.get("files"))),
        )
    return table


@models_app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Words to look for on the Hugging Face hub.")],
    modality: Annotated[Modality | None, typer.Option(help="Only this kind of model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50, help="Results to show.")] = 20,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Search the Hugging Face hub through the server; GGUF repos list their files."""
    params = {"query": query, "limit": limit, "modality": modality.value if modality else None}
    with _api(_target(ctx, server, token)) as api:
        page = api.call("GET", "/v1/models/search", params=params)
    if as_json:
        _print_json(page)
        return
    if not page["results"]:
        typer.echo(f"no models match {query!r}")
        return
    Console().print(_search_table(page["results"]))
    if page.get("next_cursor"):
        typer.echo(f"more results exist; raise --limit (at most 50) or refine {query!r}")


# -- models pull ----------------------------------------------------------------------------


def _download_body(
    source: str, file: str | None, model_id: str | None, sha256: str | None, allow_large: bool
) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        if file:
            raise typer.BadParameter("applies to Hugging Face repos only", param_hint="--file")
        src: dict[str, Any] = {"type": "url", "uri": source}
    else:
        src = {"type": "huggingface", "id": source}
        if file:
            src["filename"] = file
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise typer.BadParameter("must be 64 hex digits", param_hint="--sha256")
    options: dict[str, Any] = {"allow_large": allow_large}
    if sha256:
        options["sha256"] = sha256
    return {"model": {"id": model_id} if model_id else {}, "source": src, "options": options}


class _ServerSpeed(ProgressColumn):
    """The server's measure of the transfer: our frames arrive at its pace, not the bytes'."""

    def render(self, task: Task) -> Text:
        speed = task.fields.get("speed")
        return Text(f"{decimal(int(speed))}/s" if speed else "", style="progress.data.speed")


class _ServerEta(ProgressColumn):
    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        return Text(
            f"eta {timedelta(seconds=int(eta))}" if eta is not None else "",
            style="progress.remaining",
        )


def _progress(quiet: bool) -> Progress:
    # On stderr, so that stdout carries only the result (or --json) for scripts.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        _ServerSpeed(),
        _ServerEta(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        disable=quiet,
    )


def _follow(api: Api, job: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Drive a progress bar from the job's SSE frames until it ends; the last frame."""
    job_id = job["job_id"]
    with _progress(quiet) as progress:
        bar = progress.add_task(job["model_id"], total=job.get("bytes_total"), status="")
        for _ in range(MAX_RECONNECTS + 1):
            for frame in api.events(f"/v1/jobs/{quote(job_id, safe='')}/events"):
                job = frame
                progress.update(
                    bar,
                    total=job.get("bytes_total"),
                    completed=job.get("bytes_done") or 0,
                    speed=job.get("speed_bps") if job["status"] == "running" else None,
                    eta=job.get("eta_s") if job["status"] == "running" else None,
                    status=job["status"],
                )
            if job["status"] in TERMINAL:
                return job
            job = api.call("GET", f"/v1/jobs/{quote(job_id, safe='')}")
            if job["status"] in TERMINAL:
                return job
    raise CliError(f"lost the progress stream of job {job_id}; it is still {job['status']}")


def _report(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(job)
    if job["status"] == "completed":
        if not as_json:
            typer.echo(f"model {job['model_id']} is ready")
        return
    error = job.get("error") or {}
    what = "failed" if job["status"] == "failed" else "was cancelled"
    detail = f": {error['message']} ({error['code']})" if error.get("message") else ""
    raise CliError(f"download of {job['model_id']} {what}{detail}")


@models_app.command("pull")
def pull(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="A Hugging Face repo id (owner/name) or an http(s) URL.")
    ],
    file: Annotated[
        str | None, typer.Option(help="One file of the repo, e.g. a GGUF quantization.")
    ] = None,
    model_id: Annotated[
        str | None, typer.Option("--id", help="Register it under this model id.")
    ] = None,
    sha256: Annotated[str | None, typer.Option(help="Expected SHA-256 of the single file.")] = None,
    allow_large: Annotated[
        bool, typer.Option("--allow-large", help="Allow downloads over the size guard.")
    ] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Start it and return.")] = False,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Download a model on the server, following its progress until it is ready."""
    body = _download_body(source, file, model_id, sha256, allow_large)
    with _api(_target(ctx, server, token)) as api:
        job = api.call("POST", "/v1/models/download", body=body)
        if no_wait:
            if as_json:
                _print_json(job)
            else:
                typer.echo(f"job {job['job_id']} for model {job['model_id']} is {job['status']}")
            return
        try:
            typer.echo(
                f"following job {job['job_id']} (Ctrl-C stops following, not the download)",
                err=True,
            )
            final = _follow(api, job, quiet=as_json)
        except KeyboardInterrupt:
            # The download is the server's work; leaving the terminal must not stop it.
            typer.echo(f"\njob {job['job_id']} continues on the server; cancel it with:", err=True)
            typer.echo(f"  pluggably jobs cancel {job['job_id']}", err=True)
            raise typer.Exit(130) from None
        _report(final, as_json)


# -- models list / rm -----------------------------------------------------------------------


def _all_models(api: Api, params: dict[str, Any]) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = api.call(
            "GET", "/v1/models", params={**params, "limit": PAGE_SIZE, "cursor": cursor}
        )
        models += page["models"]
        cursor = page.get("next_cursor")
        if not cursor or cursor in seen:  # a repeated cursor would loop forever
            return models
        seen.add(cursor)


def _models_table(models: list[dict[str, Any]]) -> Table:
    table = Table("id", "provider", "modality", "format", "size", "status", "default")
    for m in models:
        table.add_row(
            Text(m["id"]),
            m["provider"],
            m["modality"],
            m["format"],
            _size(m.get("size_bytes")),
            m["status"],
            "yes" if m.get("is_default") else "",
        )
    return table


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    modality: Annotated[Modality | None, typer.Option(help="Only this modality.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider (e.g. local).")] = None,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """List the models the server knows, every page of them."""
    params = {"modality": modality.value if modality else None, "provider": provider}
    with _api(_target(ctx, server, token)) as api:
        models = _all_models(api, params)
    if as_json:
        _print_json({"models": models, "next_cursor": None})  # GET /v1/models' shape, all pages
    elif not models:
        typer.echo("no models")
    else:
        Console().print(_models_table(models))


@models_app.command("rm")
def remove(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Unregister a model and delete the files it owns on the server."""
    with _api(_target(ctx, server, token)) as api:
        # Look it up first: an unknown id fails before the prompt, and the prompt can say how big.
        model = api.call("GET", _model_path(model_id))
        if not yes:
            typer.confirm(f"delete {model['id']} ({_size(model.get('size_bytes'))})?", abort=True)
        api.call("DELETE", _model_path(model_id))
    typer.echo(f"deleted {model_id}")


# -- jobs -----------------------------------------------------------------------------------
