"""``create_app(settings)``: the FastAPI application and its lifespan.

Importing this module does no I/O. The lifespan creates directories, migrates the
database, ensures the admin row and builds every stateful object.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from pluggably import __version__
from pluggably.api import (
    artifacts,
    generate,
    invites,
    jobs,
    lifecycle,
    models,
    ops,
    parameter_schemas,
    provider_keys,
    providers,
    session_generate,
    sessions,
    storage,
    tokens,
    users,
)
from pluggably.api.errors import ErrorFormats, install_error_handlers
from pluggably.api.middleware import RequestMiddleware
from pluggably.api.openapi_security import document_security
from pluggably.api.schemas import COMMON_ERRORS
from pluggably.config import Settings
from pluggably.container import Container, build_container
from pluggably.credentials.keys import load_keyring
from pluggably.db import Database, migrate
from pluggably.observability.logging import configure_logging, get_logger
from pluggably.observability.metrics import Metrics
from pluggably.periodic import every
from pluggably.registry.discovery import discover_models
from pluggably.startup import Readiness, prepare_directories
from pluggably.surfaces.anthropic import routes as anthropic_surface
from pluggably.surfaces.openai import routes as openai_surface
from pluggably.users.service import ensure_admin_user, forget_expired_revocations

log = get_logger("pluggably.app")


async def _step(readiness: Readiness, name: str, work: Coroutine[Any, Any, None]) -> None:
    """Background startup work: /ready waits for it; a failure is logged, not fatal."""
    try:
        await work
    except Exception:
        log.exception("startup_step_failed", step=name)
    finally:
        readiness.done(name)


async def _discover_then_resume(container: Container) -> None:
    try:
        await discover_models(
            container.db, container.registry, with_bundled=container.settings.bundled_model
        )
    finally:  # unfinished downloads resume even when discovery failed
        resumed = await container.downloads.resume_unfinished()
        if resumed:
            log.info("downloads_resumed", count=resumed)
    await pin_and_preload(container, preload=container.settings.preload_defaults)


async def pin_and_preload(container: Container, *, preload: bool) -> None:
    """Pin each modality's default (and models pinned by hand); with ``preload``, load
    the defaults now. A default that fails to load is logged; requests retry it."""
    async with container.db.session() as session:
        registry = container.registry
        await registry.repin(session)
        defaults = await registry.defaults(session)
        specs = []
        for model_id in defaults.values() if preload else ():
            try:
                specs.append(registry.spec_of(await registry.get(session, model_id)))
            except Exception as exc:
                log.warning("default_model_unusable", model_id=model_id, error=str(exc))
    for spec in specs:
        try:
            await container.scheduler.ensure_loaded(spec, wait_for_room=False)
        except Exception as exc:
            log.warning("default_model_load_failed", model_id=spec.model_id, error=str(exc))


async def _scheduled_cleanup(container: Container | None) -> None:
    assert container is not None
    async with container.db.session() as session:
        report = await container.retention.cleanup(
            session, dry_run=False, active_jobs=await container.downloads.active_jobs()
        )
    if report.removed:
        log.info("storage_cleanup", freed_bytes=report.freed_bytes, removed=len(report.removed))


def create_app(settings: Settings) -> FastAPI:
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    readiness = Readiness()
    readiness.expect("database", "migrations")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare_directories(settings)
        keyring = load_keyring(settings)
        db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
        container: Container | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            await migrate.upgrade(db.engine)
            readiness.done("database")
            readiness.done("migrations")
            async with db.session() as session:
                admin = await ensure_admin_user(session)
                await forget_expired_revocations(session)
            container = build_container(settings, metrics, readiness, db, keyring, admin.id)
            interrupted = await container.records.mark_interrupted()
            if interrupted:
                log.warning("requests_interrupted", count=interrupted)
            container.records.start_writer()
            app.state.container = container
            if settings.admin_key is None and not settings.local_only:
                log.warning(
                    "no_admin_credential",
                    hint="set PLUGGABLY_ADMIN_KEY, or PLUGGABLY_LOCAL_ONLY=true for loopback use",
                )
            readiness.expect("model_discovery")
            tasks.append(
                asyncio.create_task(
                    _step(readiness, "model_discovery", _discover_then_resume(container))
                )
            )
            tasks.append(
                asyncio.create_task(
                    container.artifacts.run_cleanup_loop(db, settings.artifact_cleanup_interval_s)
                )
            )
            tasks.append(
                asyncio.create_task(
                    container.sessions.run_retention_loop(
                        db,
                        closed_days=settings.session_retention_closed_days,
                        idle_days=settings.session_retention_idle_days,
                        interval_s=settings.session_cleanup_interval_s,
                    )
                )
            )
            if settings.storage_cleanup_interval_s:
                tasks.append(
                    asyncio.create_task(
                        every(
                            settings.storage_cleanup_interval_s,
                            "storage_cleanup",
                            lambda: _scheduled_cleanup(container),
                            after=readiness.ready,
                        )
                    )
                )
            log.info("startup_complete", version=__version__, database=db.dialect)
            # What startup built lives as long as the app: keep it out of the collector's
            # scans (full collections over it were pauses every request waited behind).
            gc.collect()
            gc.freeze()
            # Fewer young-generation passes: requests allocate many short-lived objects.
            gc.set_threshold(20_000, 20, 20)
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if container is not None:
                await container.generation.close()
                await container.records.close()
                await container.scheduler.close()
                await container.downloads.close()
                await container.http.aclose()
            await db.dispose()

    app = FastAPI(
        title="Pluggably",
        version=__version__,
        summary="One HTTP API for text, image and 3D generation over providers and local models.",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    app.state.readiness = readiness
    app.state.metrics = metrics
    # The compatibility surfaces answer errors in their vendor's shape.
    errors = ErrorFormats((openai_surface.ERROR_FORMAT, anthropic_surface.ERROR_FORMAT))
    install_error_handlers(app, errors)
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        errors=errors,
    )
    # Generation first: routes are matched in order, and it is the hot path.
    for router in (
        generate.router,
        ops.router,
        users.router,
        tokens.router,
        provider_keys.router,
        invites.router,
        lifecycle.router,
        models.router,
        parameter_schemas.router,
        jobs.router,
        storage.router,
        artifacts.router,
        sessions.router,
        session_generate.router,
        providers.router,
        openai_surface.router,
        anthropic_surface.router,
    ):
        app.include_router(router)
    document_security(app)
    return app
