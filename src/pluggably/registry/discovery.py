"""Model discovery at startup, run in the background while /ready reports it: the
bundled model assembled, the models directory scanned (scan.py) and reconciled with
the registry."""

from __future__ import annotations

import asyncio

from pluggably.db import Database
from pluggably.observability.logging import get_logger
from pluggably.registry import bundled, scan
from pluggably.registry.repository import RegistryRepository
from pluggably.registry.service import RegistryService

log = get_logger("pluggably.registry")


async def discover_models(db: Database, registry: RegistryService, *, with_bundled: bool) -> None:
    models_dir = registry.models_dir
    path = await asyncio.to_thread(bundled.assemble, models_dir) if with_bundled else None
    found = await asyncio.to_thread(scan.scan, models_dir)
    async with db.session() as session:
        repo = RegistryRepository(session)
        if path is not None and await repo.get(bundled.BUNDLED_ID) is None:
            model = bundled.bundled_model(path, models_dir)
            await registry.register(session, model, doc_status="ok", doc_summary=model.description)
        counts = await scan.reconcile(session, models_dir, found, registry.register)
        defaults = await repo.defaults()
        if path is not None and "text" not in defaults:
            await repo.set_default("text", bundled.BUNDLED_ID)
    log.info("model_discovery", found=len(found), bundled=path is not None, **counts)
