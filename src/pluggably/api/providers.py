"""GET /v1/providers: what can serve this user."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel

from pluggably.api.deps import ContainerDep, DbSession, Reader
from pluggably.api.schemas import AUTH_ERRORS
from pluggably.credentials.providers import KNOWN_PROVIDERS
from pluggably.providers.base import Credential

DISCOVERY_TIMEOUT_S = 5.0

router = APIRouter(tags=["generation"], responses=AUTH_ERRORS)


class ProviderInfo(BaseModel):
    name: str
    configured: bool
    supported_modalities: list[str]
    credential_types: list[str]
    default_model: str | None
    models_discovered: list[str] | None = None
    credits_status: dict[str, object] | None = None


class ProviderList(BaseModel):
    providers: list[ProviderInfo]


@router.get("/v1/providers", response_model=ProviderList)
async def list_providers(
    principal: Reader, session: DbSession, container: ContainerDep, discover: bool = True
) -> ProviderList:
    """Every provider of this deployment; ``configured`` says whether this user can call it
    (their own key, a server key they may use, or an operator-run endpoint). With
    ``discover`` (default), ``models_discovered`` lists what the user's credential reaches
    (cached for 5 minutes, refreshed when the credential changes); ``credits_status`` is
    what the last calls showed (``unknown`` until a call tells)."""
    directory = container.providers
    user = await container.accounts.profile(session, principal)
    snapshot = await container.credentials.snapshot(session, principal, user.username)
    usable = snapshot.usable
    discovery = container.generation.discovery

    def _credits(name: str, endpoint: bool) -> str:
        return "available" if endpoint else discovery.credits(principal.user_id, name)

    names = directory.names
    # Credentials one at a time (one database session), then the upstream lists in parallel.
    credentials: dict[str, Credential] = {}
    for name in names if discover else []:
        if directory.is_endpoint(name):
            credentials[name] = directory.endpoint_credential(name)
        elif name in usable:
            found = snapshot.resolve(name)
            if found is not None:
                credentials[name] = found

    async def discovered(name: str) -> list[str] | None:
        provider = directory.get(name)
        if provider is None or name not in credentials:
            return None
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                return await discovery.models(principal.user_id, provider, credentials[name])
        except TimeoutError:
            return None

    models = await asyncio.gather(*(discovered(n) for n in names))
    infos = []
    for name, listed in zip(names, models, strict=True):
        provider = directory.get(name)
        assert provider is not None
        endpoint = directory.is_endpoint(name)
        infos.append(
            ProviderInfo(
                name=name,
                configured=endpoint or name in usable,
                supported_modalities=sorted(provider.modalities),
                credential_types=[] if endpoint else list(KNOWN_PROVIDERS.get(name, ())),
                default_model=directory.default_model(name),
                models_discovered=listed,
                credits_status={"provider": name, "status": _credits(name, endpoint)},
            )
        )
    return ProviderList(providers=infos)
