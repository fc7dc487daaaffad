"""Model discovery at startup, run in the background while /ready reports it: the
bundled models (a text model assembled, an embedding model found in its package), the
models directory scanned (scan.py) and reconciled with the registry."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database
from pluggably.observability.logging import get_logger
from pluggably.registry import bundled, bundled_embedder, scan
from pluggably.registry.models import Model
from pluggably.registry.repository import RegistryRepository
from pluggably.registry.service import RegistryService

log = get_logger("pluggably.registry")


async def discover_models(db: Database, registry: RegistryService, *, with_bundled: bool) -> None:
    models_dir = registry.models_dir
    bundles: list[Model] = []
    if with_bundled:
        path = await asyncio.to_thread(bundled.assemble, models_dir)
        if path is not None:
            bundles.append(bundled.bundled_model(path, models_dir))
        embedder = await asyncio.to_thread(bundled_embedder.embedder_model)
        if embedder is not None:
            bundles.append(embedder)
    found = await asyncio.to_thread(scan.scan, models_dir)
    async with db.session() as session:
        repo = RegistryRepository(session)
        for model in bundles:
            await _bundle(session, registry, await repo.get(model.id), model)
        counts = await scan.reconcile(session, models_dir, found, registry.register)
        defaults = await repo.defaults()
        for model in bundles:  # each the default of its modality until an admin says
            if model.modality not in defaults:
                await repo.set_default(model.modality, model.id)
    log.info("model_discovery", found=len(found), bundled=[m.id for m in bundles], **counts)


async def _bundle(
    session: AsyncSession, registry: RegistryService, existing: Model | None, model: Model
) -> None:
    """Register a bundled model, or follow its files where an upgrade moved them (a
    package's folder moves with the environment it is installed in)."""
    if existing is None:
        await registry.register(session, model, doc_status="ok", doc_summary=model.description)
    elif existing.origin == "bundled" and existing.local_path != model.local_path:
        existing.local_path, existing.size_bytes = model.local_path, model.size_bytes
        existing.status, existing.status_reason = "available", None
