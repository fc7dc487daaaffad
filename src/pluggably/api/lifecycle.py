"""Local model residency routes (API.md §4): what is loaded, load, unload. Declared
before the registry's path-style ``/v1/models/{model_id}`` routes, which would
otherwise take ``/v1/models/loaded``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from pluggably.api.deps import AdminUser, DbSession, Reader, Residency
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.lifecycle.schemas import LoadedList, LoadRequest, UnloadRequest
from pluggably.lifecycle.schemas import Residency as ResidencyState

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)


@router.get("/loaded", response_model=LoadedList)
async def loaded_models(_principal: Reader, residency: Residency) -> LoadedList:
    return residency.loaded()


@router.post(
    "/{model_id:path}/load",
    response_model=ResidencyState,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 404, 409, 503),
)
async def load_model(
    model_id: str,
    _admin: AdminUser,
    session: DbSession,
    residency: Residency,
    response: Response,
    body: Annotated[LoadRequest | None, Body()] = None,
) -> ResidencyState:
    """Load a local model: 202 ``loading`` (``wait: false``), or 200 ``loaded`` once it
    is (already loaded, or ``wait: true``). Makes room by evicting the least recently
    used idle model; 503 ``model_loading`` when every loaded model is busy or pinned."""
    state = await residency.load(session, model_id, wait=body is not None and body.wait)
    if state == "loaded":
        response.status_code = status.HTTP_200_OK
    return ResidencyState(model_id=model_id, status=state)


@router.post(
    "/{model_id:path}/unload", response_model=ResidencyState, responses=error_responses(404, 409)
)
async def unload_model(
    model_id: str,
    _admin: AdminUser,
    session: DbSession,
    residency: Residency,
    force: Annotated[bool, Query()] = False,
    body: Annotated[UnloadRequest | None, Body()] = None,
) -> ResidencyState:
    """Unload a local model. Never interrupts requests: a busy or pinned model is a 409
    unless ``force`` (query or body), which unloads once in-flight requests finish."""
    await residency.unload(session, model_id, force=force or (body is not None and body.force))
    return ResidencyState(model_id=model_id, status="unloaded")
