"""Local model residency routes (API.md §4): what is loaded, load, unload. Declared
before the registry's path-style ``/v1/models/{model_id}`` routes, which would
otherwise take ``/v1/models/loaded``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from pluggably.api.deps import AdminUser, DbSession, Reader, Registry, Scheduler
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.lifecycle.schemas import (
    LoadedList,
    LoadedModel,
    LoadRequest,
    Residency,
    UnloadRequest,
)

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)


@router.get("/loaded", response_model=LoadedList)
async def loaded_models(_principal: Reader, scheduler: Scheduler) -> LoadedList:
    return LoadedList(
        models=[
            LoadedModel(
                model_id=r.spec.model_id,
                runtime=r.runtime.kind,
                loaded_at=r.loaded_at,
                last_used_at=r.last_used_at,
                pinned=scheduler.is_pinned(r.spec.model_id),
                memory_bytes=r.memory_bytes,
                in_flight=r.in_flight,
                queue_depth=scheduler.admission.depth(r.spec.model_id),
                expires_at=scheduler.expires_at(r),
            )
            for r in sorted(scheduler.loaded(), key=lambda r: r.spec.model_id)
        ]
    )


@router.post(
    "/{model_id:path}/load",
    response_model=Residency,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 404, 409, 503),
)
async def load_model(
    model_id: str,
    _admin: AdminUser,
    session: DbSession,
    registry: Registry,
    scheduler: Scheduler,
    response: Response,
    body: Annotated[LoadRequest | None, Body()] = None,
) -> Residency:
    """Load a local model: 202 ``loading`` (``wait: false``), or 200 ``loaded`` once it
    is (already loaded, or ``wait: true``). Makes room by evicting the least recently
    used idle model; 503 ``model_loading`` when every loaded model is busy or pinned."""
    spec = await registry.local_spec(session, model_id)
    state = await scheduler.load(spec, wait=body is not None and body.wait)
    if state == "loaded":
        response.status_code = status.HTTP_200_OK
    return Residency(model_id=model_id, status=state)


@router.post(
    "/{model_id:path}/unload", response_model=Residency, responses=error_responses(404, 409)
)
async def unload_model(
    model_id: str,
    _admin: AdminUser,
    session: DbSession,
    registry: Registry,
    scheduler: Scheduler,
    force: Annotated[bool, Query()] = False,
    body: Annotated[UnloadRequest | None, Body()] = None,
) -> Residency:
    """Unload a local model. Never interrupts requests: a busy or pinned model is a 409
    unless ``force`` (query or body), which unloads once in-flight requests finish."""
    await registry.get(session, model_id)  # 404 for an unknown id
    await scheduler.unload(model_id, force=force or (body is not None and body.force))
    return Residency(model_id=model_id, status="unloaded")
