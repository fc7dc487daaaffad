"""Model registry routes. Model ids may contain '/' and ':', so they are path-style
parameters; the fixed sub-routes are declared first and take precedence."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from pluggably.api.deps import AdminUser, Catalog, DbSession, Downloads, Hub, Reader, Registry
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.catalog.service import ModelQuery
from pluggably.downloads.schemas import DownloadJobInfo, DownloadRequest
from pluggably.registry.schemas import (
    Modality,
    ModelInfo,
    ModelList,
    ModelStatus,
    SearchPage,
)
from pluggably.registry.search import search

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)
NOT_FOUND = error_responses(404)


@router.get("", response_model=ModelList)
async def list_models(
    principal: Reader, session: DbSession, catalog: Catalog, query: Annotated[ModelQuery, Query()]
) -> ModelList:
    """Registry models first, then the provider models this user can call
    (``provider:model``, ``format: remote``) with their ``availability``: discovered with
    the user's credential (``available``; cached 5 minutes, skipped with
    ``discover=false``), else the provider's default model (``unknown``). Naming a
    ``provider`` the user has no credential for lists its default as ``locked``."""
    return await catalog.page(session, principal, query)


@router.get("/search", response_model=SearchPage, responses=error_responses(503))
async def search_models(
    _principal: Reader,
    hub: Hub,
    query: Annotated[str | None, Query(max_length=200)] = None,
    source: Literal["huggingface"] = "huggingface",
    modality: Modality | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> SearchPage:
    """Search the Hugging Face hub; GGUF repos list their quantization files with sizes.
    An unreachable hub answers 503 ``backend_unavailable``."""
    return await search(hub, query, modality, limit, cursor)


@router.post(
    "/download",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DownloadJobInfo,
    responses=error_responses(400, 404, 409, 502, 503, 507),
)
async def download_model(
    body: DownloadRequest, admin: AdminUser, response: Response, downloads: Downloads
) -> DownloadJobInfo:
    """Start a background download (202). The same source already downloading or
    downloaded answers its existing job (200): no second transfer."""
    job, created = await downloads.submit(admin.user_id, body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return downloads.info(job)


@router.get("/{model_id:path}/status", response_model=ModelStatus, responses=NOT_FOUND)
async def model_status(
    model_id: str,
    principal: Reader,
    session: DbSession,
    catalog: Catalog,
) -> ModelStatus:
    """Residency of a local model; a provider model (``provider:model`` as GET /v1/models
    lists it) is always ``loaded``, with nothing queued here."""
    return await catalog.status(session, principal, model_id)


@router.post(
    "/{model_id:path}/default", response_model=ModelInfo, responses=error_responses(404, 409)
)
async def set_default(
    model_id: str, _admin: AdminUser, session: DbSession, registry: Registry
) -> ModelInfo:
    """Make this model the default of its modality (persisted; pinned while default)."""
    return await registry.set_default(session, model_id)


@router.get("/{model_id:path}", response_model=ModelInfo, responses=NOT_FOUND)
async def get_model(
    model_id: str,
    principal: Reader,
    session: DbSession,
    catalog: Catalog,
) -> ModelInfo:
    """A registry model, or a provider model (``provider:model``) with the same entry
    GET /v1/models?provider= lists for this caller."""
    return await catalog.details(session, principal, model_id)


@router.delete(
    "/{model_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, 409),
)
async def delete_model(
    model_id: str, _admin: AdminUser, session: DbSession, registry: Registry
) -> Response:
    """Unregister a model and delete the files it owns (refused while loaded or in use)."""
    await registry.delete(session, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
