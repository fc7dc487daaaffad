"""What each provider offers one user: whether they can call it, the models their
credential reaches (discovered with a timeout, cached by Discovery), and their credits.
The model catalog (catalog/service.py) surveys them for each caller and merges their
models with the registry's."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialService
from pluggably.providers.base import Credential, Provider
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.embeddings import is_embedding_model
from pluggably.providers.model_lists import Discovery
from pluggably.registry.schemas import (
    Availability,
    Capabilities,
    CreditsState,
    ModelCreditsStatus,
    ModelInfo,
)

DISCOVERY_TIMEOUT_S = 5.0
IMAGE_MODELS = re.compile(r"(dall-e|gpt-image|imagen|stable-diffusion|sdxl|flux)", re.I)


@dataclass(frozen=True)
class ProviderView:
    name: str
    provider: Provider
    endpoint: bool
    configured: bool
    default_model: str | None
    discovered: list[str] | None
    credits: str


async def survey(
    session: AsyncSession,
    principal: Principal,
    username: str | None,
    directory: ProviderDirectory,
    credentials: CredentialService,
    discovery: Discovery,
    *,
    discover: bool,
    only: str | None = None,
) -> list[ProviderView]:
    """Every provider of this deployment (or just ``only``) as this user sees it.
    Credentials are read one at a time (one database session), then the upstream model
    lists in parallel."""
    snapshot = await credentials.snapshot(session, principal, username)
    names = [n for n in directory.names if only in (None, n)]
    found: dict[str, Credential] = {}
    for name in names:
        if directory.is_endpoint(name):
            found[name] = directory.endpoint_credential(name)
        elif name in snapshot.usable and (credential := snapshot.resolve(name)) is not None:
            found[name] = credential

    async def discovered(name: str, provider: Provider) -> list[str] | None:
        if not discover or name not in found:
            return None
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                return await discovery.models(principal.user_id, provider, found[name])
        except TimeoutError:
            return None

    providers = [(n, p) for n in names if (p := directory.get(n)) is not None]
    listed = await asyncio.gather(*(discovered(n, p) for n, p in providers))
    views = []
    for (name, provider), models in zip(providers, listed, strict=True):
        endpoint = directory.is_endpoint(name)
        views.append(
            ProviderView(
                name=name,
                provider=provider,
                endpoint=endpoint,
                configured=endpoint or name in snapshot.usable,
                default_model=directory.default_model(name),
                discovered=models,
                credits="available" if endpoint else discovery.credits(principal.user_id, name),
            )
        )
    return views


def remote_models(views: list[ProviderView], *, locked: bool) -> list[ModelInfo]:
    """Provider models as catalog entries, sorted by id (``provider:model``): what the
    user's credential reaches (``available``), else the provider's default model —
    ``unknown`` when the user can call the provider but the list could not be read,
    ``locked`` (only with ``locked``) when they have no credential for it."""
    now = datetime.now(UTC)
    infos: dict[str, ModelInfo] = {}
    for view in views:
        if not view.configured and not locked:
            continue
        if view.discovered is not None:
            names, access = view.discovered, "available"
        elif view.default_model is not None:
            names, access = [view.default_model], "unknown" if view.configured else "locked"
        else:
            continue
        credits = _credits_state(view.credits)
        for model in names:
            modality = _modality(model)
            if modality not in view.provider.modalities:
                continue
            info = ModelInfo(
                id=f"{view.name}:{model}",
                name=model,
                version="latest",  # the provider's current release of this name
                provider=view.name,
                modality=modality,
                description=None,
                capabilities=Capabilities(),
                source=None,
                format="remote",
                size_bytes=None,
                status="available",
                runtime_status=None,
                is_default=False,
                pinned=False,
                last_used_at=None,
                created_at=now,
                updated_at=now,
                availability=Availability(
                    provider=view.name,
                    access=access,
                    credits_status=ModelCreditsStatus(provider=view.name, status=credits),
                ),
            )
            infos[info.id] = info
    return [infos[k] for k in sorted(infos)]


def _modality(model: str) -> str:
    """What a provider model makes, by its name (model lists say nothing more)."""
    if IMAGE_MODELS.search(model):
        return "image"
    return "embedding" if is_embedding_model(model) else "text"


def _credits_state(value: str) -> CreditsState:
    """A transient ``rate_limited`` says nothing of credits: ``unknown`` in the catalog."""
    return cast(CreditsState, value) if value in get_args(CreditsState) else "unknown"
