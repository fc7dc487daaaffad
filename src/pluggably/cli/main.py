"""The ``pluggably`` command line."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from pluggably import __version__
from pluggably.cli.chat import chat
from pluggably.cli.generate import generate
from pluggably.cli.jobs import jobs_app
from pluggably.cli.local import fail, run_prepare, safe_url, settings_from, with_services
from pluggably.cli.models import models_app
from pluggably.cli.requests import requests_app
from pluggably.cli.usage import usage_app
from pluggably.cli.users import users_app
from pluggably.config import Settings
from pluggably.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pluggably.container import Container

app = typer.Typer(
    name="pluggably",
    help="Pluggably: one HTTP API for text, image and 3D generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
secrets_app = typer.Typer(help="The master keyring.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(secrets_app, name="secrets")
app.add_typer(models_app, name="models")
app.add_typer(jobs_app, name="jobs")
app.add_typer(requests_app, name="requests")
app.add_typer(usage_app, name="usage")
app.command("generate")(generate)
app.command("chat")(chat)


def _switch_auto_vacuum(settings: Settings) -> None:
    """An SQLite file made before auto-vacuum is switched to it here, once (a full
    VACUUM): by `serve` and `db upgrade` only, never by the other commands."""
    from pluggably.db.auto_vacuum import enable_incremental_vacuum
    from pluggably.observability.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)  # its lines as the server's
    asyncio.run(enable_incremental_vacuum(settings.resolved_database_url))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [8080].")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes on the port (more than 1: PostgreSQL, local models off).",
        ),
    ] = 1,
) -> None:
    """Start the HTTP server."""
    import uvicorn

    from pluggably.app import create_app
    from pluggably.cli.workers import check_workers, run_workers
    from pluggably.serving import uvicorn_options

    settings = settings_from(host=host, port=port)
    if (problem := check_workers(settings, workers)) is not None:
        raise fail(problem)
    run_prepare(settings)
    _switch_auto_vacuum(settings)
    if workers > 1:
        run_workers(settings, workers)
        return
    application = create_app(settings)  # configures logging, which the options may use
    uvicorn.run(application, **uvicorn_options(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database."""
    settings = settings_from()
    run_prepare(settings)
    _switch_auto_vacuum(settings)
    typer.echo(f"database {safe_url(settings)} is at the latest revision")


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Add a new active master key and re-encrypt every stored provider credential.

    Retired keys stay in the key file: API tokens and invites hashed under them keep
    working (tokens move to the new key on their next use)."""
    from pluggably.keyring import add_key

    settings = settings_from()
    run_prepare(settings)
    try:
        keyring = add_key(settings)
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}") from None

    async def work(container: Container, session: AsyncSession) -> tuple[int, list[str]]:
        report = await container.credentials.rotate(session)
        return report.resealed, report.unreadable

    resealed, unreadable = with_services(settings, work)
    typer.echo(f"active key is now {keyring.active.key_id}; re-encrypted {resealed} credentials")
    if unreadable:
        typer.echo(
            f"{len(unreadable)} credentials could not be decrypted and were left as they are: "
            + ", ".join(unreadable),
            err=True,
        )
        raise typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
