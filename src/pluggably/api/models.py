"""Model registry routes. Model ids may contain '/' and ':', so they are path-style
parameters; the fixed sub-routes are declared first and take precedence."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.api.deps import AdminUser, Catalog, DbSession, Downloads, Hub, Reader, Registry
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.auth.principal import Principal
from pluggably.downloads.schemas import DownloadJobInfo, DownloadRequest
from pluggably.errors import ModelNotFound
from pluggably.providers.catalog import ProviderCatalog, remote_models
from pluggably.registry.schemas import (
    Modality,
    ModelInfo,
    ModelList,
    ModelStatus,
    ModelStatusName,
    SearchPage,
)
from pluggably.registry.search import search
from pluggably.registry.service import decode_catalog_cursor, encode_cursor

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)
NOT_FOUND = error_responses(404)


@router.get("", response_model=ModelList)
async def list_models(
    principal: Reader,
    session: DbSession,
    registry: Registry,
    catalog: Catalog,
    modality: Modality | None = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    status: ModelStatusName | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Substring of id or name.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    discover: bool = True,
) -> ModelList:
    """Registry models first, then the provider models this user can call
    (``provider:model``, ``format: remote``) with their ``availability``: discovered with
    the user's credential (``available``; cached 5 minutes, skipped with
    ``discover=false``), else the provider's default model (``unknown``). Naming a
    ``provider`` the user has no credential for lists its default as ``locked``."""
    after, remote_after = decode_catalog_cursor(cursor)
    models: list[ModelInfo] = []
    if remote_after is None:
        models, next_cursor = await registry.page(
            session,
            is_admin=principal.is_admin,
            modality=modality,
            provider=provider,
            status=status,
            q=q,
            after=after,
            limit=limit,
        )
        if next_cursor is not None:
            return ModelList(models=models, next_cursor=next_cursor)
    if status not in (None, "available") or provider == "local":
        return ModelList(models=models, next_cursor=None)
    views = await catalog.views(session, principal, discover=discover, only=provider)
    needle = q.lower() if q else None
    remote = [
        m
        for m in remote_models(views, locked=provider is not None)
        if (modality is None or m.modality == modality)
        and (needle is None or needle in m.id.lower())
        and (remote_after is None or m.id > remote_after)
    ]
    room = limit - len(models)
    page, more = remote[:room], len(remote) > room
    models += page
    if not more:
        return ModelList(models=models, next_cursor=None)
    last = page[-1].id if page else (remote_after or "")
    return ModelList(models=models, next_cursor=encode_cursor(last, phase="remote"))


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


async def _remote(
    catalog: ProviderCatalog, session: AsyncSession, principal: Principal, model_id: str
) -> ModelInfo:
    """A provider model the catalog lists for this caller, else the 404 it was."""
    info = await catalog.model(session, principal, model_id)
    if info is None:
        raise ModelNotFound(f"No model '{model_id}'; see GET /v1/models.")
    return info


@router.get("/{model_id:path}/status", response_model=ModelStatus, responses=NOT_FOUND)
async def model_status(
    model_id: str,
    principal: Reader,
    session: DbSession,
    registry: Registry,
    catalog: Catalog,
) -> ModelStatus:
    """Residency of a local model; a provider model (``provider:model`` as GET /v1/models
    lists it) is always ``loaded``, with nothing queued here."""
    try:
        return await registry.status(session, model_id)
    except ModelNotFound:
        info = await _remote(catalog, session, principal, model_id)
    return ModelStatus(
        model_id=info.id,
        status=info.status,
        runtime_status="loaded",
        queue_depth=0,
        loaded_at=None,
        last_used_at=None,
        memory_bytes=None,
    )


@router.post(
    "/{model_id:path}/default", response_model=ModelInfo, responses=error_responses(404, 409)
)
async def set_default(
    model_id: str, _admin: AdminUser, session: DbSession, registry: Registry
) -> ModelInfo:
    """Make this model the default of its modality (persisted; pinned while default)."""
    info = await registry.set_default(session, model_id)
    await registry.repin(session)
    return info


@router.get("/{model_id:path}", response_model=ModelInfo, responses=NOT_FOUND)
async def get_model(
    model_id: str,
    principal: Reader,
    session: DbSession,
    registry: Registry,
    catalog: Catalog,
) -> ModelInfo:
    """A registry model, or a provider model (``provider:model``) with the same entry
    GET /v1/models?provider= lists for this caller."""
    try:
        return await registry.details(session, model_id, is_admin=principal.is_admin)
    except ModelNotFound:
        return await _remote(catalog, session, principal, model_id)


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
    await registry.repin(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
