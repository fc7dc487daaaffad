"""What one caller can see and use: the providers of this deployment as they see them,
and the registry's models merged with the provider models their credentials reach.
GET /v1/models, /v1/models/{id}, its status, GET /v1/providers and the OpenAI surface's
model list all read it, so each lists the same models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialService
from pluggably.errors import ModelNotFound
from pluggably.providers.catalog import ProviderView, remote_models, survey
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.model_lists import Discovery
from pluggably.registry.schemas import (
    Modality,
    ModelInfo,
    ModelList,
    ModelStatus,
    ModelStatusName,
)
from pluggably.registry.service import RegistryService, decode_catalog_cursor, encode_cursor
from pluggably.users.service import AccountService

LISTED_BY_DEFAULT = ("text", "image", "3d")


class ModelQuery(BaseModel):
    """The filters and page of GET /v1/models (its query parameters)."""

    model_config = ConfigDict(frozen=True)

    modality: Modality | None = None
    provider: str | None = Field(None, max_length=64)
    status: ModelStatusName | None = None
    q: str | None = Field(None, max_length=200, description="Substring of id or name.")
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=500)
    discover: bool = True

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities listed: the one asked for, else those one generates with.
        Embedding models are listed when asked for by name (``modality=embedding``):
        the original PlugAI clients know three modalities and read every entry."""
        return (self.modality,) if self.modality else LISTED_BY_DEFAULT


@dataclass(frozen=True)
class Usable:
    """A model this caller can call now, as a plain list (the OpenAI surface) names it."""

    id: str
    provider: str
    created_at: datetime


@dataclass(frozen=True)
class ModelCatalog:
    """Built once with its peers; holds no state of its own (discovery caches)."""

    accounts: AccountService
    directory: ProviderDirectory
    credentials: CredentialService
    discovery: Discovery
    registry: RegistryService

    async def providers(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        discover: bool,
        only: str | None = None,
    ) -> list[ProviderView]:
        """Every provider (or just ``only``) as this caller sees it."""
        user = await self.accounts.profile(session, principal)
        return await survey(
            session,
            principal,
            user.username,
            self.directory,
            self.credentials,
            self.discovery,
            discover=discover,
            only=only,
        )

    async def page(
        self, session: AsyncSession, principal: Principal, query: ModelQuery
    ) -> ModelList:
        """Registry models first, then the provider models (``provider:model``); one
        cursor walks both, the remote phase keyed by the last remote id."""
        after, remote_after = decode_catalog_cursor(query.cursor)
        models: list[ModelInfo] = []
        if remote_after is None:
            models, next_cursor = await self.registry.page(
                session,
                is_admin=principal.is_admin,
                modalities=query.modalities,
                provider=query.provider,
                status=query.status,
                q=query.q,
                after=after,
                limit=query.limit,
            )
            if next_cursor is not None:
                return ModelList(models=models, next_cursor=next_cursor)
        if query.status not in (None, "available") or query.provider == "local":
            return ModelList(models=models, next_cursor=None)
        remote = [
            m
            for m in await self._remote_models(session, principal, query)
            if remote_after is None or m.id > remote_after
        ]
        room = query.limit - len(models)
        page, more = remote[:room], len(remote) > room
        models += page
        if not more:
            return ModelList(models=models, next_cursor=None)
        last = page[-1].id if page else (remote_after or "")
        return ModelList(models=models, next_cursor=encode_cursor(last, phase="remote"))

    async def _remote_models(
        self, session: AsyncSession, principal: Principal, query: ModelQuery
    ) -> list[ModelInfo]:
        """Naming a ``provider`` lists its default even without a credential (``locked``)."""
        views = await self.providers(
            session, principal, discover=query.discover, only=query.provider
        )
        needle = query.q.lower() if query.q else None
        return [
            m
            for m in remote_models(views, locked=query.provider is not None)
            if m.modality in query.modalities and (needle is None or needle in m.id.lower())
        ]

    async def usable(self, session: AsyncSession, principal: Principal) -> list[Usable]:
        """The available registry models by id, then the provider models this caller's
        credentials reach."""
        local = sorted(
            (
                Usable(id=m.id, provider=m.provider, created_at=m.created_at)
                for m in await self.registry.all(session)
                if m.status == "available"
            ),
            key=lambda m: m.id,
        )
        views = await self.providers(session, principal, discover=True)
        remote = [
            Usable(id=m.id, provider=m.provider, created_at=m.created_at)
            for m in remote_models(views, locked=False)
        ]
        return local + remote

    async def details(
        self, session: AsyncSession, principal: Principal, model_id: str
    ) -> ModelInfo:
        """A registry model, or a provider model with the entry GET /v1/models?provider=
        lists for this caller."""
        try:
            return await self.registry.details(session, model_id, is_admin=principal.is_admin)
        except ModelNotFound:
            return await self._remote(session, principal, model_id)

    async def status(
        self, session: AsyncSession, principal: Principal, model_id: str
    ) -> ModelStatus:
        """Residency of a local model; a provider model is always ``loaded``, with nothing
        queued here."""
        try:
            return await self.registry.status(session, model_id)
        except ModelNotFound:
            info = await self._remote(session, principal, model_id)
        return ModelStatus(
            model_id=info.id,
            status=info.status,
            runtime_status="loaded",
            queue_depth=0,
            loaded_at=None,
            last_used_at=None,
            memory_bytes=None,
        )

    async def _remote(
        self, session: AsyncSession, principal: Principal, model_id: str
    ) -> ModelInfo:
        """The catalog entry of ``provider:model`` (``locked`` when the caller cannot call
        the provider), else the 404 it was."""
        provider, sep, name = model_id.partition(":")
        if sep and name and self.directory.get(provider) is not None:
            views = await self.providers(session, principal, discover=True, only=provider)
            for info in remote_models(views, locked=True):
                if info.id == model_id:
                    return info
        raise ModelNotFound(f"No model '{model_id}'; see GET /v1/models.")
