"""The server's life: startup (directories, migrations, the admin row, every stateful
object, the work that goes on in the background) and shutdown in reverse order.

Periodic work has one shape: a named pass a service offers (``ArtifactService.expire``,
``SessionService.retain``, ``Scheduler.unload_idle``, the storage cleanup, the limit
counters' sweep), listed in
``periodic_work`` and run by ``periodic.every`` in a task this lifespan owns."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI

from pluggably import __version__
from pluggably.config import Settings
from pluggably.container import Container, build_container
from pluggably.db import DATABASE_DOWN, Database, migrate, utcnow
from pluggably.keyring import load_keyring
from pluggably.observability.logging import get_logger
from pluggably.observability.metrics import Metrics
from pluggably.periodic import every
from pluggably.registry.discovery import discover_models
from pluggably.startup import Readiness, prepare_directories
from pluggably.users.first_run import setup_link, start_setup
from pluggably.users.service import ensure_admin_user, forget_expired_revocations

log = get_logger("pluggably.app")
# Rate windows are minutes: a sweep a minute keeps the shared counter tables small.
LIMIT_SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Periodic:
    name: str
    interval_s: float
    work: Callable[[], Awaitable[object]]
    after_ready: bool = False  # the first pass waits until /ready says ready


def periodic_work(container: Container) -> list[Periodic]:
    settings = container.settings
    work = [
        Periodic(
            "artifact_cleanup",
            settings.artifact_cleanup_interval_s,
            partial(container.artifacts.expire, container.db),
        ),
        Periodic("limit_sweep", LIMIT_SWEEP_INTERVAL_S, partial(_sweep_limits, container)),
    ]
    if (cluster := container.cluster) is not None:
        work.append(Periodic("cluster_heartbeat", cluster.me.heartbeat_s, cluster.beat))
    closed, idle = settings.session_retention_closed_days, settings.session_retention_idle_days
    if closed is not None or idle is not None:
        retain = partial(
            container.sessions.retain, container.db, closed_days=closed, idle_days=idle
        )
        work.append(Periodic("session_retention", settings.session_cleanup_interval_s, retain))
    if (days := settings.responses_retention_days) is not None:
        expire = partial(container.responses.expire, days)
        work.append(Periodic("response_retention", settings.session_cleanup_interval_s, expire))
    for pool in container.providers.pools:  # each endpoint pool checks its servers
        check = Periodic(f"endpoint_pool_check:{pool.name}", pool.check_interval_s, pool.check)
        work.append(check)
    if (tick := container.scheduler.idle_tick_s) is not None:
        work.append(Periodic("idle_unload", tick, container.scheduler.unload_idle))
    if settings.storage_cleanup_interval_s:
        cleanup = partial(_storage_cleanup, container)
        work.append(Periodic("storage_cleanup", settings.storage_cleanup_interval_s, cleanup, True))
    if (replica := container.replica).shared:  # another replica's downloads may need a runner
        take_over = container.downloads.take_over
        work.append(Periodic("download_takeover", replica.heartbeat_s, take_over, True))
    return work


@asynccontextmanager
async def lifespan(
    app: FastAPI, settings: Settings, metrics: Metrics, readiness: Readiness
) -> AsyncIterator[None]:
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
            setup_token = await start_setup(session, settings)
        container = build_container(
            settings, metrics, readiness, db, keyring, admin.id, setup_token=setup_token
        )
        await _open(container)
        app.state.container = container
        tasks = _background(container, readiness)
        log.info("startup_complete", version=__version__, database=db.dialect)
        _tune_collector()
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if container is not None:
            await _close(container)
        await db.dispose()


async def _open(container: Container) -> None:
    if container.cluster is not None:
        await container.cluster.start()
    interrupted = await container.records.mark_interrupted(alone=container.cluster is None)
    if interrupted:
        log.warning("requests_interrupted", count=interrupted)
    container.records.start_writer()
    settings = container.settings
    token = container.first_run.token
    if token is not None:
        # The one line that lets the operator in: no admin account, key or local mode.
        log.warning(
            "first_run_setup",
            url=setup_link(settings, token),
            hint="open this link to create the first administrator (it works once); or set "
            "PLUGGABLY_ADMIN_KEY, or PLUGGABLY_LOCAL_ONLY=true for loopback use",
        )
    elif settings.admin_key is None and not settings.local_only:
        log.info("admin_accounts_only", hint="administrators sign in with their accounts")


def _background(container: Container, readiness: Readiness) -> list[asyncio.Task[None]]:
    readiness.expect("model_discovery")
    tasks = [
        asyncio.create_task(_step(readiness, "model_discovery", _discover_then_resume(container)))
    ]
    for job in periodic_work(container):
        after = readiness.ready if job.after_ready else None
        tasks.append(asyncio.create_task(every(job.interval_s, job.name, job.work, after=after)))
    return tasks


async def _close(container: Container) -> None:
    """Each step runs even when one before it failed (the database gone at shutdown):
    models are still unloaded, download leases released, connections closed."""
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("generation", container.generation.close),
        ("records", container.records.close),
        ("limiter", container.limiter.close),  # spends still pending
    ]
    if (cluster := container.cluster) is not None:  # after the records: nothing of ours runs
        steps.append(("cluster", cluster.close))
    steps += [
        ("scheduler", container.scheduler.close),
        ("downloads", container.downloads.close),
        ("http", container.http.aclose),
    ]
    for name, step in steps:
        try:
            await step()
        except DATABASE_DOWN as exc:
            log.warning("shutdown_step_failed", step=name, error=type(exc).__name__)
        except Exception:
            log.exception("shutdown_step_failed", step=name)


def _tune_collector() -> None:
    # What startup built lives as long as the app: keep it out of the collector's
    # scans (full collections over it were pauses every request waited behind).
    gc.collect()
    gc.freeze()
    # Fewer young-generation passes: requests allocate many short-lived objects.
    gc.set_threshold(20_000, 20, 20)


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
            container.db,
            container.registry,
            with_bundled=container.settings.bundled_model and container.settings.local_models,
        )
    finally:  # unfinished downloads resume even when discovery failed
        resumed = await container.downloads.resume_unfinished()
        if resumed:
            log.info("downloads_resumed", count=resumed)
    settings = container.settings
    await pin_and_preload(container, preload=settings.preload_defaults and settings.local_models)


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


async def _sweep_limits(container: Container) -> None:
    await container.limiter.counters.sweep(utcnow())


async def _storage_cleanup(container: Container) -> None:
    async with container.db.session() as session:
        report = await container.retention.cleanup(session, dry_run=False)
    if report.removed:
        log.info("storage_cleanup", freed_bytes=report.freed_bytes, removed=len(report.removed))
