"""The caller's provider credentials: stored sealed, only ever answered masked."""

from __future__ import annotations

from fastapi import APIRouter, status

from pluggably.api.deps import Credentials, DbSession, Generation, Reader, Writer
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.credentials.schemas import ProviderKeyCreate, ProviderKeyDeleted, ProviderKeyInfo

router = APIRouter(prefix="/v1/users/provider-keys", tags=["provider keys"], responses=AUTH_ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProviderKeyInfo)
async def put_provider_key(
    body: ProviderKeyCreate,
    principal: Writer,
    session: DbSession,
    credentials: Credentials,
    generation: Generation,
) -> ProviderKeyInfo:
    """Store the caller's credential for a provider, replacing any previous one."""
    stored = ProviderKeyInfo.model_validate(await credentials.put(session, principal, body))
    generation.forget_caller(principal.user_id)
    return stored


@router.get("", response_model=list[ProviderKeyInfo])
async def list_provider_keys(
    principal: Reader, session: DbSession, credentials: Credentials
) -> list[ProviderKeyInfo]:
    """The caller's provider credentials, masked, as a bare JSON list."""
    return [ProviderKeyInfo.model_validate(r) for r in await credentials.list(session, principal)]


@router.delete("/{provider}", response_model=ProviderKeyDeleted, responses=error_responses(404))
async def delete_provider_key(
    provider: str,
    principal: Writer,
    session: DbSession,
    credentials: Credentials,
    generation: Generation,
) -> ProviderKeyDeleted:
    """Remove the caller's credential for a provider; answers it, masked (``deleted: true``)."""
    removed = ProviderKeyDeleted.model_validate(
        await credentials.delete(session, principal, provider)
    )
    generation.forget_caller(principal.user_id)
    return removed
