"""Operations: health, readiness, version, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pluggably import __version__
from pluggably.api.deps import (
    AppMetrics,
    Artifacts,
    MetricsAccess,
    Providers,
    Reader,
    StartedDb,
    StorageQuota,
)
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.errors import NotReady
from pluggably.observability.schemas import Features, Health, Ready, Version
from pluggably.runtimes.factory import available
from pluggably.startup import Readiness

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: answers without touching any dependency."""
    return Health()


@router.get("/ready", response_model=Ready, responses=error_responses(503))
async def ready(request: Request, db: StartedDb) -> Ready:
    """Readiness: the database answers and startup work is done; else 503 ``not_ready``
    with ``details.missing`` naming what is not."""
    readiness: Readiness = request.app.state.readiness
    missing = sorted(readiness.pending)
    if db is None:
        missing = sorted({*missing, "startup"})
    elif not await db.ping():
        missing = sorted({*missing, "database"})
    if missing:
        raise NotReady(
            f"Not ready: waiting for {', '.join(missing)}.",
            details={"missing": missing},
            retry_after=1,
        )
    return Ready()


@router.get("/version", response_model=Version)
async def version() -> Version:
    return Version(version=__version__)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **AUTH_ERRORS,
    },
)
async def metrics(app_metrics: AppMetrics, quota: StorageQuota, _access: MetricsAccess) -> Response:
    """Prometheus metrics; admin-only unless ``PLUGGABLY_METRICS_PUBLIC`` is set."""
    app_metrics.storage_used.set(await quota.recent_used_bytes())
    app_metrics.storage_limit.set(quota.limit_bytes or 0)
    return Response(app_metrics.render(), media_type=app_metrics.content_type)


@router.get("/v1/features", response_model=Features, responses=AUTH_ERRORS)
async def features(_principal: Reader, artifacts: Artifacts, providers: Providers) -> Features:
    """What this deployment can do: the local runtimes whose libraries are installed
    (a missing one makes its models answer ``feature_not_supported``), where artifacts
    are stored, and the providers configured."""
    runtimes = available()
    return Features(
        local_models_enabled=any(runtimes.values()),
        runtimes=runtimes,
        artifacts_backend=artifacts.backend,
        providers=providers.names,
    )
