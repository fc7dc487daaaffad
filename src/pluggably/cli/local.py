"""What the commands that work on the configured database itself share (serve, db,
users, secrets): on the server host, with its settings, and no token. Failures are one
line on stderr (exit 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from sqlalchemy.engine import make_url

from pluggably.cli import common
from pluggably.config import Settings, load_settings
from pluggably.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pluggably.container import Container

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    """What goes wrong on the host (settings, files, the database) exits 2."""
    return common.fail(message, 2)


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}") from None


def safe_url(settings: Settings) -> str:
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


def run_prepare(settings: Settings) -> None:
    """The lifespan's startup work, done first here so that a problem is one line."""
    from pluggably.keyring import load_keyring
    from pluggably.startup import prepare_directories

    try:
        prepare_directories(settings)
        load_keyring(settings)
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}") from None
    except OSError as exc:
        raise fail(f"cannot prepare {exc.filename or settings.data_dir}: {exc.strerror}") from None
    try:
        asyncio.run(_migrate(settings))
    except Exception as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise fail(f"database {safe_url(settings)} is not usable: {reason}") from None


def with_services(settings: Settings, work: Callable[[Container, AsyncSession], Awaitable[T]]) -> T:
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

    run_prepare(settings)
    try:
        return asyncio.run(run())
    except GatewayError as exc:
        raise fail(exc.message) from None
