"""``pluggably models …``: search, download, list, load, unload and delete models on a
running server, through ``pluggably.client``.

Every command takes ``--server`` and ``--token``, either after the group
(``pluggably models --server URL list``) or after the command; the command's own value
wins (see ``cli.connection`` for the environment and the config file).
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pluggably.cli.common import AsJson, Modality, answer, emit_json, fail, remote, size
from pluggably.cli.connection import Flags, Server, Token
from pluggably.cli.progress import follow, report
from pluggably.client import Client
from pluggably.lifecycle.schemas import Residency
from pluggably.registry.schemas import ModelInfo, SearchResult

PAGE_SIZE = 200  # the most GET /v1/models returns per page

models_app = typer.Typer(
    help="Search, download, list, load and delete models on a running server.",
    no_args_is_help=True,
)


@models_app.callback()
def models_main(ctx: typer.Context, server: Server = None, token: Token = None) -> None:
    """Search, download, list, load and delete models on a running server."""
    ctx.obj = Flags(server, token)


ModelId = Annotated[str, typer.Argument(help="The model's id (see `pluggably models list`).")]


# -- models search --------------------------------------------------------------------------


def _files_cell(result: SearchResult) -> str:
    return "\n".join(f"{f.filename} ({size(f.size_bytes)})" for f in result.files or [])


def _search_table(results: list[SearchResult]) -> Table:
    table = Table("id", "downloads", "likes", "modality", "gated", "GGUF files")
    for r in results:
        table.add_row(
            Text(r.id),  # Text, not a markup string: repo ids may hold '[' ']'
            f"{r.downloads or 0:,}",
            f"{r.likes or 0:,}",
            ", ".join(r.modality_hints),
            "yes" if r.gated else "",
            Text(_files_cell(r)),
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
    with remote(ctx, server, token) as client:
        page = client.models.search(
            query, modality=modality.value if modality else None, limit=limit
        )
    if as_json:
        emit_json(page)
        return
    if not page.results:
        typer.echo(f"no models match {query!r}")
        return
    Console().print(_search_table(page.results))
    if page.next_cursor:
        typer.echo(f"more results exist; raise --limit (at most 50) or refine {query!r}")


# -- models pull ----------------------------------------------------------------------------


def _check_pull(source: str, file: str | None, sha256: str | None) -> None:
    if file and source.startswith(("http://", "https://")):
        raise fail("--file applies to Hugging Face repos only, not to URLs", 2)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise fail(f"--sha256: {sha256!r} is not 64 hex digits", 2)


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
    _check_pull(source, file, sha256)
    with remote(ctx, server, token) as client:
        job = client.models.download(
            source, filename=file, model_id=model_id, sha256=sha256, allow_large=allow_large
        )
        if no_wait:
            if as_json:
                emit_json(job)
            else:
                typer.echo(f"job {job.job_id} for model {job.model_id} is {job.status}")
            return
        try:
            typer.echo(
                f"following job {job.job_id} (Ctrl-C stops following, not the download)",
                err=True,
            )
            final = follow(client, job, quiet=as_json)
        except KeyboardInterrupt:
            # The download is the server's work; leaving the terminal must not stop it.
            typer.echo(f"\njob {job.job_id} continues on the server; cancel it with:", err=True)
            typer.echo(f"  pluggably jobs cancel {job.job_id}", err=True)
            raise typer.Exit(130) from None
        report(final, as_json)


# -- models list / load / unload / rm -------------------------------------------------------


def _all_models(client: Client, modality: Modality | None, provider: str | None) -> list[ModelInfo]:
    models: list[ModelInfo] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = client.models.list(
            modality=modality.value if modality else None,
            provider=provider,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        models += page.models
        cursor = page.next_cursor
        if not cursor or cursor in seen:  # a repeated cursor would loop forever
            return models
        seen.add(cursor)


def _models_table(models: list[ModelInfo]) -> Table:
    table = Table("id", "provider", "modality", "format", "size", "status", "runtime", "default")
    for m in models:
        table.add_row(
            Text(m.id),
            m.provider,
            m.modality,
            m.format,
            size(m.size_bytes),
            m.status,
            m.runtime_status or "",
            "yes" if m.is_default else "",
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
    with remote(ctx, server, token) as client:
        models = _all_models(client, modality, provider)
    if as_json:
        emit_json({"models": [m.model_dump(mode="json") for m in models], "next_cursor": None})
    elif not models:
        typer.echo("no models")
    else:
        Console().print(_models_table(models))


def _state(residency: Residency) -> None:
    typer.echo(f"model {residency.model_id} is {residency.status}")


@models_app.command("load")
def load(
    ctx: typer.Context,
    model_id: ModelId,
    wait: Annotated[
        bool, typer.Option("--wait", help="Return once it is loaded, not once it started.")
    ] = False,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Load a local model into memory (admin)."""
    answer(ctx, server, token, as_json, lambda c: c.models.load(model_id, wait=wait), _state)


@models_app.command("unload")
def unload(
    ctx: typer.Context,
    model_id: ModelId,
    force: Annotated[
        bool,
        typer.Option("--force", help="Unload once its in-flight requests finish, even if pinned."),
    ] = False,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Unload a local model from memory (admin)."""
    answer(ctx, server, token, as_json, lambda c: c.models.unload(model_id, force=force), _state)


@models_app.command("rm")
def remove(
    ctx: typer.Context,
    model_id: ModelId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Unregister a model and delete the files it owns on the server (admin)."""
    with remote(ctx, server, token) as client:
        # Look it up first: an unknown id fails before the prompt, and the prompt can say how big.
        model = client.models.get(model_id)
        if not yes:
            typer.confirm(f"delete {model.id} ({size(model.size_bytes)})?", abort=True)
        client.models.delete(model_id)
    typer.echo(f"deleted {model_id}")
