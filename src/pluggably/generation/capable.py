"""Whether a candidate can do what a request asks beyond text (tools, JSON output,
reading images, embedding texts):
one that cannot is skipped before anything is sent to it, with its reason in
``selection.attempts``; when none can, the request is a 400 naming each reason."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.errors import FeatureNotSupported, GatewayError
from pluggably.generation.plan import Plan
from pluggably.messages import Features
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.embeddings import is_embedding_model
from pluggably.registry.models import Model
from pluggably.registry.service import RegistryService
from pluggably.routing.embedding import cannot_embed
from pluggably.routing.resolve import LOCAL, Target


def local_unable(model: Model, features: Features, *, images: bool = False) -> str | None:
    """Why the local ``model`` cannot do what ``features`` ask (or read the request's
    ``images``); None when it can.

    GGUF models constrain their output with a grammar compiled from the JSON Schema
    (JSON output, a forced tool call); ``tool_choice: auto`` needs a chat template that
    takes tools. transformers models have no constrained decoding here. The local text
    runtimes read text only."""
    if model.modality != "text":
        return None
    if images and "image" not in (model.capabilities or {}).get("input_modalities", []):
        return f"'{model.id}' reads text only; send the request without images"
    if model.format == "gguf":
        auto_tools = features.uses_tools and not features.tool_choice.forced
        if auto_tools and not (model.capabilities or {}).get("tool_calling"):
            return (
                f"'{model.id}' has no chat template that takes tools, so it cannot choose "
                "whether to call one (tool_choice 'auto'); ask for 'required' or name the "
                "function (grammar-constrained), or use a model whose template supports tools"
            )
        return None
    if features.uses_tools:
        return f"'{model.id}' ({model.format}) cannot call tools here; use a GGUF model"
    if features.json_output:
        return (
            f"'{model.id}' ({model.format}) cannot constrain its output to JSON here; "
            "use a GGUF model"
        )
    return None


async def capable(
    session: AsyncSession,
    plan: Plan,
    targets: list[Target],
    *,
    providers: ProviderDirectory,
    registry: RegistryService,
) -> list[Target]:
    """The targets that can do what the plan's features ask; the others are recorded
    as skipped. None left: ``FeatureNotSupported`` with every reason."""
    features, images = plan.features, plan.has_images
    kept: list[Target] = []
    for target in targets:
        reason = await _unable(session, target, features, images, providers, registry)
        if reason is None:
            kept.append(target)
        else:
            plan.skipped(target, reason)
    if not kept:
        reasons = "; ".join(a.reason or "" for a in plan.attempts)
        raise FeatureNotSupported(f"No candidate model can answer this request: {reasons}.")
    return kept


async def _unable(
    session: AsyncSession,
    target: Target,
    features: Features,
    images: bool,
    providers: ProviderDirectory,
    registry: RegistryService,
) -> str | None:
    if target.provider == LOCAL:
        model = await _registered(session, registry, target)
        return None if model is None else local_unable(model, features, images=images)
    provider = providers.get(target.provider)
    return None if provider is None else provider.unable(target.model, features)


async def embedders(
    session: AsyncSession,
    plan: Plan,
    targets: list[Target],
    *,
    providers: ProviderDirectory,
    registry: RegistryService,
) -> list[Target]:
    """The targets that can embed texts. The first choice that cannot is recorded as
    skipped; fallbacks of another modality (a chain set up for chat) are no candidates
    of an embedding request and drop out silently. None left: ``FeatureNotSupported``
    saying why the first choice cannot."""
    kept: list[Target] = []
    first_reason: str | None = None
    for index, target in enumerate(targets):
        reason = await _cannot_embed(session, target, providers, registry, named=index == 0)
        if reason is None:
            kept.append(target)
        elif index == 0:
            first_reason = reason
            plan.skipped(target, reason)
    if not kept:
        raise FeatureNotSupported(f"{first_reason or 'No candidate model embeds texts'}.")
    return kept


async def _cannot_embed(
    session: AsyncSession,
    target: Target,
    providers: ProviderDirectory,
    registry: RegistryService,
    *,
    named: bool,
) -> str | None:
    """Why ``target`` cannot embed. A provider model the caller named is taken at its
    word (an endpoint's embedding model may have any name); a fallback must be an
    embedding model by its name."""
    if target.provider != LOCAL:
        reason = cannot_embed(target.provider, providers.get(target.provider))
        if reason is None and not named and not is_embedding_model(target.model):
            reason = f"{target.label} is not an embedding model"
        return reason
    model = await _registered(session, registry, target)
    if model is None or model.modality == "embedding":
        return None
    return (
        f"'{model.id}' is a {model.modality} model and makes no embeddings; use an "
        "embedding model (GET /v1/models?modality=embedding)"
    )


async def _registered(
    session: AsyncSession, registry: RegistryService, target: Target
) -> Model | None:
    """A local target's registry entry; None for an unknown model (the usual checks
    say so later)."""
    try:
        return await registry.get(session, target.model)
    except GatewayError:
        return None
