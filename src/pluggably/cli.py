"""The ``pluggably`` command line."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

from pluggably import __version__
from pluggably.config import Settings, load_settings
from pluggably.errors import ConfigError

app = typer.Typer(
    name="pluggably",
    help="Pluggably: one HTTP API for text, image and 3D generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"pluggably: {message}", err=True)
    return typer.Exit(code=2)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise _fail(f"configuration error: {exc}") from None


def _safe_url(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


async def _migrate(settings: Settings) -> None:
    from pluggably.db import Database, migrate

    db = Database(settings.resolved_database_url)
    try:
        await migrate.upgrade(db.engine)
    finally:
        await db.dispose()


def _run_prepare(settings: Settings) -> None:
    """The lifespan's startup work, done first here so that a problem is one line."""
    from pluggably.credentials.keys import load_keyring
    from pluggably.startup import prepare_directories

    try:
        prepare_directories(settings)
        load_keyring(settings)
    except ConfigError as exc:
        raise _fail(f"configuration error: {exc}") from None
    except OSError as exc:
        raise _fail(f"cannot prepare {exc.filename or settings.data_dir}: {exc.strerror}") from None
    try:
        asyncio.run(_migrate(settings))
    except Exception as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise _fail(f"database {_safe_url(settings)} is not usable: {reason}") from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [8080].")] = None,
) -> None:
    """Start the HTTP server."""
    import uvicorn

    from pluggably.app import create_app
    from pluggably.observability.logging import configure_logging

    settings = _settings(host=host, port=port)
    configure_logging(settings.log_level, settings.log_format)
    _run_prepare(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # our middleware logs one line per request, without query strings
        server_header=False,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database."""
    settings = _settings()
    _run_prepare(settings)
    typer.echo(f"database {_safe_url(settings)} is at the latest revision")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
