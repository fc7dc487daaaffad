"""Ollama's model listings over the catalog, the registry and residency: ``tags`` (the
models this caller can use: registry models, then the provider models their
credentials reach), ``show`` (one of them) and ``ps`` (the local models loaded now).
Names are registry ids (``provider:model`` for provider models)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.catalog.service import ModelCatalog
from pluggably.lifecycle.residency import ResidencyService
from pluggably.registry.models import Model
from pluggably.registry.schemas import ModelInfo
from pluggably.registry.service import RegistryService
from pluggably.surfaces.ollama.shapes import (
    OllamaDetails,
    OllamaListed,
    OllamaPs,
    OllamaRunning,
    OllamaShow,
    OllamaTags,
)

# ``ps`` for a model that stays loaded until evicted (Ollama writes a far-off date too).
NEVER = "9999-12-31T23:59:59Z"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def digest(model_id: str, size: int, changed: datetime) -> str:
    """A stable sha256 standing for the model's version: Ollama's is its manifest's;
    here the id, size and last change of the registry entry."""
    return hashlib.sha256(f"{model_id}|{size}|{changed.isoformat()}".encode()).hexdigest()


def details(fmt: str, version: str | None, provider: str) -> OllamaDetails:
    """What Ollama reads from a model's files; here what the registry knows: the
    format, the GGUF quantization, and for a provider model the provider as family."""
    local = provider == "local"
    return OllamaDetails(
        format=fmt,
        family="" if local else provider,
        families=None if local else [provider],
        parameter_size="",
        quantization_level=(version or "") if fmt == "gguf" else "",
    )


def _of_row(model: Model) -> OllamaDetails:
    return details(model.format, model.version, model.provider)


async def tags(
    session: AsyncSession, principal: Principal, catalog: ModelCatalog, registry: RegistryService
) -> OllamaTags:
    rows = {m.id: m for m in await registry.all(session)}
    listed = []
    for usable in await catalog.usable(session, principal):
        row = rows.get(usable.id)
        size = (row.size_bytes or 0) if row else 0
        changed = row.updated_at if row else usable.created_at
        listed.append(
            OllamaListed(
                name=usable.id,
                model=usable.id,
                modified_at=rfc3339(changed),
                size=size,
                digest=digest(usable.id, size, changed),
                details=_of_row(row) if row else details("remote", None, usable.provider),
            )
        )
    return OllamaTags(models=listed)


def capabilities(info: ModelInfo) -> list[str]:
    """Ollama's capability names: ``completion`` (text), ``tools`` (provider text models,
    and GGUFs whose template takes tools), ``vision`` (image input), ``embedding``,
    ``image`` (image generation)."""
    caps = info.capabilities
    if info.modality == "embedding":
        return ["embedding"]
    if info.modality == "image":
        return ["image"]
    if info.modality != "text":
        return []
    out = ["completion"]
    if info.provider != "local" or caps.tool_calling:
        out.append("tools")
    if "image" in caps.input_modalities:
        out.append("vision")
    return out


def show(info: ModelInfo) -> OllamaShow:
    """``model_info`` carries what clients look for by suffix: the context window
    (``….context_length``) and an embedding model's vector length."""
    model_info: dict[str, object] = {"general.architecture": "pluggably", "general.name": info.name}
    caps = info.capabilities
    if caps.max_context_tokens:
        model_info["pluggably.context_length"] = caps.max_context_tokens
    if caps.embedding_dimensions:
        model_info["pluggably.embedding_length"] = caps.embedding_dimensions
    return OllamaShow(
        modelfile=f"# Served by Pluggably\nFROM {info.id}\n",
        parameters="",
        template="",
        details=details(info.format, info.version, info.provider),
        model_info=model_info,
        capabilities=capabilities(info),
        modified_at=rfc3339(info.updated_at),
    )


async def ps(
    session: AsyncSession, registry: RegistryService, residency: ResidencyService
) -> OllamaPs:
    rows = {m.id: m for m in await registry.all(session)}
    running = []
    for loaded in residency.loaded().models:
        row = rows.get(loaded.model_id)
        changed = row.updated_at if row else loaded.loaded_at
        size = (row.size_bytes or 0) if row else 0
        context = (row.capabilities or {}).get("max_context_tokens") if row else None
        running.append(
            OllamaRunning(
                name=loaded.model_id,
                model=loaded.model_id,
                size=loaded.memory_bytes,
                digest=digest(loaded.model_id, size, changed),
                details=_of_row(row) if row else details("", None, "local"),
                expires_at=rfc3339(loaded.expires_at) if loaded.expires_at else NEVER,
                size_vram=0,
                context_length=context if isinstance(context, int) else None,
            )
        )
    return OllamaPs(models=running)
