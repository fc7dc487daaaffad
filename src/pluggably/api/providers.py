"""GET /v1/providers: what can serve this user."""

from __future__ import annotations

from fastapi import APIRouter

from pluggably.api.deps import Catalog, DbSession, Reader
from pluggably.api.schemas import AUTH_ERRORS
from pluggably.catalog.service import LISTED_BY_DEFAULT
from pluggably.credentials.providers import KNOWN_PROVIDERS
from pluggably.providers.base import Provider
from pluggably.providers.pool import EndpointPool
from pluggably.providers.schemas import PoolMemberInfo, ProviderInfo, ProviderList

router = APIRouter(tags=["generation"], responses=AUTH_ERRORS)


@router.get("/v1/providers", response_model=ProviderList)
async def list_providers(
    principal: Reader, session: DbSession, catalog: Catalog, discover: bool = True
) -> ProviderList:
    """Every provider of this deployment; ``configured`` says whether this user can call it
    (their own key, a server key they may use, or an operator-run endpoint). With
    ``discover`` (default), ``models_discovered`` lists what the user's credential reaches
    (cached for 5 minutes, refreshed when the credential changes); ``credits_status`` is
    what the last calls showed (``unknown`` until a call tells). Administrators also see
    the servers of each endpoint pool (``pool``)."""
    views = await catalog.providers(session, principal, discover=discover)
    return ProviderList(
        providers=[
            ProviderInfo(
                name=v.name,
                configured=v.configured,
                supported_modalities=sorted(v.provider.modalities & set(LISTED_BY_DEFAULT)),
                embeddings="embedding" in v.provider.modalities,
                credential_types=[] if v.endpoint else list(KNOWN_PROVIDERS.get(v.name, ())),
                default_model=v.default_model,
                models_discovered=v.discovered,
                credits_status={"provider": v.name, "status": v.credits},
                pool=_pool(v.provider) if principal.is_admin else None,
            )
            for v in views
        ]
    )


def _pool(provider: Provider) -> list[PoolMemberInfo] | None:
    if not isinstance(provider, EndpointPool):
        return None
    return [PoolMemberInfo.model_validate(m, from_attributes=True) for m in provider.view()]
