"""Model registry routes. Model ids may contain '/' and ':', so they are path-style
parameters; the fixed sub-routes are declared first and take precedence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from pluggably.api.deps import AdminUser, DbSession, Reader, Registry
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.registry.schemas import Modality, ModelInfo, ModelList, ModelStatus, ModelStatusName

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_ERRORS)
NOT_FOUND = error_responses(404)


@router.get("", response_model=ModelList)
async def list_models(
    principal: Reader,
    session: DbSession,
    registry: Registry,
    modality: Modality | None = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    status: ModelStatusName | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Substring of id or name.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ModelList:
    models, next_cursor = await registry.page(
        session,
        is_admin=principal.is_admin,
        modality=modality,
        provider=provider,
        status=status,
        q=q,
        cursor=cursor,
        limit=limit,
    )
    return ModelList(models=models, next_cursor=next_cursor)


@router.get("/{model_id:path}/status", response_model=ModelStatus, responses=NOT_FOUND)
async def model_status(
    model_id: str, _principal: Reader, session: DbSession, registry: Registry
) -> ModelStatus:
    return await registry.status(session, model_id)


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
    model_id: str, principal: Reader, session: DbSession, registry: Registry
) -> ModelInfo:
    return await registry.details(session, model_id, is_admin=principal.is_admin)


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
