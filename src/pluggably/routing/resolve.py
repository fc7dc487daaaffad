"""From a request to an ordered list of candidates: the chosen model first, then
its fallback chain."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.errors import (
    FeatureNotSupported,
    ModelNotFound,
    ModelRequired,
    UnsupportedProvider,
)
from pluggably.providers.catalog import IMAGE_MODELS
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.embeddings import is_embedding_model
from pluggably.registry.service import RegistryService
from pluggably.routing.embedding import cannot_embed
from pluggably.routing.request import RoutedRequest

_IMAGE_INTENT = re.compile(
    r"\b(draw|paint|sketch|illustrat\w*|picture of|image of|photo of|render an? image)\b", re.I
)
_3D_INTENT = re.compile(r"\b(3d|three-dimensional|mesh|\.obj|\.glb)\b", re.I)
COMMERCIAL_ORDER = (
    "openai",
    "anthropic",
    "google",
    "azure",
    "xai",
    "deepseek",
    "groq",
    "huggingface",
)


LOCAL = "local"


@dataclass(frozen=True)
class Target:
    provider: str
    model: str  # the name the provider knows it by

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"


def modality_of(body: RoutedRequest, target: Target) -> str:
    """An explicit modality wins, then texts to embed; a named model or provider decides
    by its name (image and embedding models are recognisable); only automatic selection
    reads the prompt's intent."""
    if body.modality:
        return body.modality
    if body.input.texts is not None:
        return "embedding"
    if body.model or body.provider:
        if is_embedding_model(target.model):
            return "embedding"
        return "image" if IMAGE_MODELS.search(target.model) else "text"
    return infer_modality(body)


def infer_modality(body: RoutedRequest) -> str:
    """Inputs first (texts to embed; images alone mean vision chat), then the prompt's
    intent."""
    if body.modality:
        return body.modality
    if body.input.texts is not None:
        return "embedding"
    if body.input.mesh:
        return "3d"
    text = body.input.prompt or (
        (body.input.messages[-1].content or "") if body.input.messages else ""
    )
    if _3D_INTENT.search(text or ""):
        return "3d"
    if not body.input.images and _IMAGE_INTENT.search(text or ""):
        return "image"
    return "text"


class Router:
    def __init__(
        self,
        providers: ProviderDirectory,
        registry: RegistryService,
        fallbacks: dict[str, list[str]],
        default_fallbacks: list[str],
    ) -> None:
        self.providers = providers
        self.registry = registry
        self.fallbacks = fallbacks
        self.default_fallbacks = default_fallbacks

    async def candidates(
        self,
        session: AsyncSession,
        body: RoutedRequest,
        *,
        preferred_model: str | None,
        has_credential: set[str],
    ) -> list[Target]:
        primary = await self._primary(session, body, preferred_model, has_credential)
        chain = self.fallbacks.get(primary.label) or self.fallbacks.get(primary.model)
        chain = list(chain if chain is not None else self.default_fallbacks)
        if body.provider and not body.model and body.selection_mode == "auto":
            # Only a provider named: when its credits run out, a free model answers.
            chain += [
                f"{name}:{model}"
                for name in self.providers.names
                if self.providers.is_endpoint(name)
                and (model := self.providers.default_model(name, infer_modality(body))) is not None
            ]
            local = await self.local_default(session, infer_modality(body))
            if local is not None:
                chain.append(local.label)
        targets = [primary]
        for spec in chain:
            target = await self.parse(session, spec)
            if target not in targets and self._allowed(target, body):
                targets.append(target)
        return targets

    async def _primary(
        self,
        session: AsyncSession,
        body: RoutedRequest,
        preferred_model: str | None,
        has_credential: set[str],
    ) -> Target:
        if body.selection_mode == "model" and not body.model:
            raise ModelRequired("selection_mode 'model' needs a model.")
        if body.model:
            return await self.parse(session, body.model)
        if body.provider == LOCAL:
            modality = infer_modality(body)
            local = await self.local_default(session, modality)
            if local is None:
                raise ModelRequired(f"No local {modality} model is the default; name one.")
            return local
        if body.provider:
            return self._provider_default(body.provider, infer_modality(body))
        if preferred_model and infer_modality(body) != "embedding":
            return await self.parse(session, preferred_model)
        if body.selection_mode != "commercial_only":
            local = await self.local_default(session, infer_modality(body))
            if local is not None:
                return local
        return self._auto(body, has_credential)

    async def local_default(self, session: AsyncSession, modality: str) -> Target | None:
        model_id = (await self.registry.defaults(session)).get(modality)
        return Target(LOCAL, model_id) if model_id else None

    async def parse(self, session: AsyncSession, spec: str) -> Target:
        """``provider:model``, a registry id, or a bare vendor model name."""
        provider, sep, model = spec.partition(":")
        if sep and self.providers.get(provider) is not None and model:
            return Target(provider, model)
        if await self.registry.exists(session, spec):
            return Target(LOCAL, spec)
        if provider == LOCAL and sep:
            if await self.registry.exists(session, model):
                return Target(LOCAL, model)
            raise ModelNotFound(f"No local model '{model}' is registered; see GET /v1/models.")
        vendor = self.providers.vendor_of(spec)
        if vendor is not None and self.providers.get(vendor) is not None:
            return Target(vendor, spec)
        if sep and self.providers.get(provider) is None:
            raise UnsupportedProvider(
                f"Unknown provider '{provider}'; known: {', '.join(self.providers.names)}."
            )
        raise ModelNotFound(
            f"No model '{spec}': use a registry id (GET /v1/models) or 'provider:model' "
            f"with a provider of {', '.join(self.providers.names)}."
        )

    def _provider_default(self, provider: str, modality: str) -> Target:
        found = self.providers.get(provider)
        if found is None:
            raise UnsupportedProvider(
                f"Unknown provider '{provider}'; known: {', '.join(self.providers.names)}."
            )
        reason = cannot_embed(provider, found) if modality == "embedding" else None
        if reason is not None:
            raise FeatureNotSupported(f"{reason}.")
        model = self.providers.default_model(provider, modality)
        if model is None:
            kind = "embedding " if modality == "embedding" else ""
            raise ModelRequired(
                f"{provider} has no default {kind}model here; name one with 'model'."
            )
        return Target(provider, model)

    def _auto(self, body: RoutedRequest, has_credential: set[str]) -> Target:
        modality = infer_modality(body)
        names: list[str] = []
        if body.selection_mode != "commercial_only":
            names += sorted(n for n in self.providers.names if self.providers.is_endpoint(n))
        if body.selection_mode != "free_only":
            names += [n for n in COMMERCIAL_ORDER if n in has_credential]
        for name in names:
            provider = self.providers.get(name)
            model = self.providers.default_model(name, modality)
            if provider is not None and model and modality in provider.modalities:
                return Target(name, model)
        raise ModelNotFound(
            f"No {modality} model is available to you: store a provider key "
            "(POST /v1/users/provider-keys) or name a model."
        )

    def _allowed(self, target: Target, body: RoutedRequest) -> bool:
        """selection_mode narrows the fallbacks too: 'model' allows none."""
        free = target.provider == LOCAL or self.providers.is_endpoint(target.provider)
        return {
            "model": False,
            "free_only": free,
            "commercial_only": not free,
        }.get(body.selection_mode, True)
