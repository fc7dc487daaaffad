"""Residency as the routes ask for it (API.md §4): what is loaded, load a registry model,
unload one. The registry says which models exist and where their files are; the
scheduler decides."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.lifecycle.scheduler import Scheduler
from pluggably.lifecycle.schemas import LoadedList, LoadedModel
from pluggably.registry.service import RegistryService


class ResidencyService:
    def __init__(self, registry: RegistryService, scheduler: Scheduler) -> None:
        self.registry, self.scheduler = registry, scheduler

    def loaded(self) -> LoadedList:
        scheduler = self.scheduler
        return LoadedList(
            models=[
                LoadedModel(
                    model_id=r.spec.model_id,
                    runtime=r.runtime.kind,
                    loaded_at=r.loaded_at,
                    last_used_at=r.last_used_at,
                    pinned=scheduler.is_pinned(r.spec.model_id),
                    memory_bytes=r.memory_bytes,
                    in_flight=r.in_flight,
                    queue_depth=scheduler.admission.depth(r.spec.model_id),
                    expires_at=scheduler.expires_at(r),
                )
                for r in sorted(scheduler.loaded(), key=lambda r: r.spec.model_id)
            ]
        )

    async def load(
        self, session: AsyncSession, model_id: str, *, wait: bool
    ) -> Literal["loaded", "loading"]:
        """404 for an unknown id, 409 for a model that is not local (or unusable)."""
        spec = await self.registry.local_spec(session, model_id)
        return await self.scheduler.load(spec, wait=wait)

    async def unload(self, session: AsyncSession, model_id: str, *, force: bool) -> None:
        """Never interrupts requests: a busy or pinned model is a 409 unless ``force``."""
        await self.registry.get(session, model_id)  # 404 for an unknown id
        await self.scheduler.unload(model_id, force=force)

    def keep_alive(
        self, model_id: str, seconds: float | None, *, may_unpin: bool, own: bool = True
    ) -> bool:
        """A request's keep-alive for a loaded model (Ollama's ``keep_alive``: 0 unloads
        it once idle, None keeps it until evicted, else its idle timeout); ``own=False``:
        the server's again (a request that names none). A pinned model (each modality's
        default) is left as it is unless ``may_unpin`` (an admin asked): residency is
        shared, and the pin is the operator's. True when it applies."""
        scheduler = self.scheduler
        if scheduler.is_pinned(model_id) and not may_unpin:
            return False
        if not own:
            return scheduler.server_keep_alive(model_id)
        return scheduler.keep_alive(model_id, seconds)
