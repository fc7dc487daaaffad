"""GET /v1/providers: what can serve this user."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from pluggably.api.deps import ContainerDep, DbSession, Reader
from pluggably.api.schemas import AUTH_ERRORS
from pluggably.credentials.providers import KNOWN_PROVIDERS

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
    usable = await container.credentials.usable_providers(session, principal, user.username)
    discovery = container.generation.discovery

    def _credits(name: str, endpoint: bool) -> str:
        return "available" if endpoint else discovery.credits(principal.user_id, name)

    infos = []
    for name in directory.names:
        provider = directory.get(name)
        assert provider is not None
        endpoint = directory.is_endpoint(name)
        configured = endpoint or name in usable
        discovered = None
        if configured and discover:
            credential = (
                directory.endpoint_credential(name)
                if endpoint
                else await container.credentials.resolve(session, principal, user.username, name)
            )
            if credential is not None:
                discovered = await discovery.models(principal.user_id, provider, credential)
        infos.append(
            ProviderInfo(
                name=name,
                configured=configured,
                supported_modalities=sorted(provider.modalities),
                credential_types=[] if endpoint else list(KNOWN_PROVIDERS.get(name, ())),
                default_model=directory.default_model(name),
                models_discovered=discovered,
                credits_status={
                    "provider": name,
                    "status": "available"
                    if endpoint
                    else discovery.credits(principal.user_id, name),
                },
            )
        )
    return ProviderList(providers=infos)
