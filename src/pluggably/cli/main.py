"""The ``pluggably`` command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from pluggably import __version__
from pluggably.cli.chat import chat
from pluggably.cli.generate import generate
from pluggably.cli.jobs import jobs_app
from pluggably.cli.models import models_app
from pluggably.cli.requests import requests_app
from pluggably.cli.usage import usage_app
from pluggably.config import Settings, load_settings
from pluggably.errors import ConfigError, GatewayError

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
users_app = typer.Typer(help="Accounts and invites.", no_args_is_help=True)
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
    from pluggably.users.service import ensure_admin_user, forget_expired_revocations

    db = Database(settings.resolved_database_url)
    try:
        await migrate.upgrade(db.engine)
        # The lifespan's first writes (both idempotent): a database that can be read
        # but not written (SQLite write-locked by another process) fails here, in one
        # line, rather than in the server's startup with a traceback.
        async with db.session() as session:
            await ensure_admin_user(session)
            await forget_expired_revocations(session)
    finally:
        await db.dispose()


def _run_prepare(settings: Settings) -> None:
    """The lifespan's startup work, done first here so that a problem is one line."""
    from pluggably.keyring import load_keyring
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
) -> None:
    """Start the HTTP server."""
    import uvicorn

    from pluggably.app import create_app
    from pluggably.serving import uvicorn_options

    settings = _settings(host=host, port=port)
    _run_prepare(settings)
    _switch_auto_vacuum(settings)
    application = create_app(settings)  # configures logging, which the options may use
    uvicorn.run(application, **uvicorn_options(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database."""
    settings = _settings()
    _run_prepare(settings)
    _switch_auto_vacuum(settings)
    typer.echo(f"database {_safe_url(settings)} is at the latest revision")


T = TypeVar("T")


def _with_services(
    settings: Settings, work: Callable[[Container, AsyncSession], Awaitable[T]]
) -> T:
    """Run ``work`` in one transaction with the same services the server builds."""
    from pluggably.container import build_container
    from pluggably.db import Database
    from pluggably.keyring import load_keyring
    from pluggably.observability.metrics import Metrics
    from pluggably.startup import Readiness
    from pluggably.users.service import ensure_admin_user

    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            async with db.session() as session:
                admin = await ensure_admin_user(session)
                container = build_container(
                    settings, Metrics(), Readiness(), db, load_keyring(settings), admin.id
                )
                return await work(container, session)
        finally:
            await db.dispose()

    _run_prepare(settings)
    try:
        return asyncio.run(run())
    except GatewayError as exc:
        raise _fail(exc.message) from None


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="PLUGGABLY_NEW_PASSWORD"
        ),
    ] = "",
) -> None:
    """Create an account (the first admin, typically). No invite needed."""
    from pluggably.users.schemas import RegisterRequest

    try:
        body = RegisterRequest(username=username, email=email, password=password)
    except ValidationError as exc:
        raise _fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    async def work(container: Container, session: AsyncSession) -> str:
        user = await container.accounts.create_user(
            session,
            username=body.username,
            email=body.email,
            password=password,
            role="admin" if admin else "user",
        )
        return user.id

    user_id = _with_services(_settings(), work)
    typer.echo(f"created {'admin' if admin else 'user'} {username} ({user_id})")


@users_app.command("invite")
def users_invite(
    email: Annotated[str | None, typer.Option(help="Only this email may use it.")] = None,
    expires_days: Annotated[int | None, typer.Option(min=1, max=365)] = None,
) -> None:
    """Create a single-use invite and print its secret (shown only once)."""

    from pluggably.users.schemas import InviteCreate

    try:
        body = InviteCreate(email=email, expires_days=expires_days)
    except ValidationError as exc:
        raise _fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    async def work(container: Container, session: AsyncSession) -> str:
        secret, _ = await container.invites.create(
            session, container.admin_user_id, body.email, body.expires_days
        )
        return secret

    typer.echo(_with_services(_settings(), work))


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Add a new active master key and re-encrypt every stored provider credential.

    Retired keys stay in the key file: API tokens and invites hashed under them keep
    working (tokens move to the new key on their next use)."""
    from pluggably.keyring import add_key

    settings = _settings()
    _run_prepare(settings)
    try:
        keyring = add_key(settings)
    except ConfigError as exc:
        raise _fail(f"configuration error: {exc}") from None

    async def work(container: Container, session: AsyncSession) -> tuple[int, list[str]]:
        report = await container.credentials.rotate(session)
        return report.resealed, report.unreadable

    resealed, unreadable = _with_services(settings, work)
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
