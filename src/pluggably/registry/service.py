"""Registry logic: listing, details, defaults, schemas, registration, deletion."""

from __future__ import annotations

import asyncio
import base64
import binascii
import glob
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database
from pluggably.errors import Conflict, ModelNotFound, ValidationFailed
from pluggably.registry.models import Model, ModelDoc, ModelSchema
from pluggably.registry.param_schemas import default_schema
from pluggably.registry.repository import RegistryRepository
from pluggably.registry.scan import SHARD
from pluggably.registry.schemas import (
    Availability,
    Capabilities,
    Documentation,
    ModelInfo,
    ModelStatus,
    ParameterSchema,
    Source,
    client_properties,
)
from pluggably.runtimes.base import ModelSpec


class RuntimeStatus(Protocol):
    """What the registry reads of one model's residency (lifecycle's RuntimeState),
    described here so the registry does not depend on lifecycle."""

    @property
    def status(self) -> str: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def loaded_at(self) -> datetime | None: ...
    @property
    def memory_bytes(self) -> int | None: ...
    @property
    def in_use(self) -> bool: ...


class RuntimeView(Protocol):
    """What the registry needs of model residency (owned by the scheduler): each
    model's state, and where to hand the pinned set."""

    def state(self, model_id: str) -> RuntimeStatus: ...

    def pin(self, model_ids: set[str]) -> None: ...


LAST_USED_RESOLUTION_S = 60.0


def encode_cursor(last_id: str, *, phase: str = "registry") -> str:
    """Keyset cursors; the model list walks the registry, then the remote models."""
    key = "after" if phase == "registry" else "remote_after"
    return base64.urlsafe_b64encode(json.dumps({key: last_id}).encode()).decode().rstrip("=")


def decode_catalog_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """(registry id to start after, remote id to start after); one of them is None."""
    if cursor is None:
        return None, None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(data, dict) or len(data) != 1:
            raise TypeError
        ((key, value),) = data.items()
        if key not in ("after", "remote_after") or not isinstance(value, str):
            raise TypeError
        return (value, None) if key == "after" else (None, value)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from the previous page.",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor"}],
        ) from None


@dataclass
class RegistryService:
    models_dir: Path
    runtimes: RuntimeView
    _removals: set[asyncio.Task[None]] = field(default_factory=set)
    _touched: dict[str, float] = field(default_factory=dict)

    # reading
    async def page(
        self,
        session: AsyncSession,
        *,
        is_admin: bool,
        modalities: Sequence[str] | None = None,
        provider: str | None = None,
        status: str | None = None,
        q: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[list[ModelInfo], str | None]:
        repo = RegistryRepository(session)
        rows = await repo.page(
            modalities=modalities,
            provider=provider,
            status=status,
            q=q,
            after=after,
            limit=limit + 1,
        )
        defaults = await repo.defaults()
        infos = [self.info_of(m, defaults, is_admin) for m in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return infos, next_cursor

    async def all(self, session: AsyncSession) -> list[Model]:
        return list(await RegistryRepository(session).all())

    async def defaults(self, session: AsyncSession) -> dict[str, str]:
        return await RegistryRepository(session).defaults()

    async def exists(self, session: AsyncSession, model_id: str) -> bool:
        return await RegistryRepository(session).get(model_id) is not None

    async def get(self, session: AsyncSession, model_id: str) -> Model:
        model = await RegistryRepository(session).get(model_id)
        if model is None:
            raise ModelNotFound(f"No model '{model_id}' is registered; see GET /v1/models.")
        return model

    async def details(self, session: AsyncSession, model_id: str, *, is_admin: bool) -> ModelInfo:
        repo = RegistryRepository(session)
        model = await self.get(session, model_id)
        info = self.info_of(model, await repo.defaults(), is_admin)
        doc = await repo.doc(model_id)
        if doc is not None:
            info.documentation = Documentation.model_validate(doc, from_attributes=True)
        return info

    async def status(self, session: AsyncSession, model_id: str) -> ModelStatus:
        model = await self.get(session, model_id)
        state = self.runtimes.state(model_id) if model.provider == "local" else None
        return ModelStatus(
            model_id=model.id,
            status=model.status,
            runtime_status=state.status if state else "loaded",
            queue_depth=state.queue_depth if state else 0,
            loaded_at=state.loaded_at if state else None,
            last_used_at=model.last_used_at,
            memory_bytes=state.memory_bytes if state else None,
        )

    async def schema(self, session: AsyncSession, model_id: str) -> ParameterSchema:
        model = await self.get(session, model_id)
        row = await RegistryRepository(session).latest_schema(model_id)
        if row is None:  # registered before schemas existed: serve the default
            schema, version = self._default_schema(model), 1
        else:
            schema, version = row.schema, row.version
        return ParameterSchema.model_validate(
            {
                "model_id": model.id,
                "version": str(version),
                "modality": model.modality,
                "schema": schema,
                "properties": client_properties(schema),
            }
        )

    async def touch(self, db: Database, model_id: str) -> None:
        """Record that a model answered (status, listings and retention read it), at
        most once a minute per model: no write on every request."""
        now = time.monotonic()
        if now - self._touched.get(model_id, -LAST_USED_RESOLUTION_S) < LAST_USED_RESOLUTION_S:
            return
        self._touched[model_id] = now
        async with db.session() as session:
            await RegistryRepository(session).touch(model_id)

    def spec_of(self, model: Model) -> ModelSpec:
        """What a runtime needs to load a registered local model (409 when its files
        are not usable now)."""
        if model.status != "available" or not model.local_path:
            reason = f": {model.status_reason}" if model.status_reason else ""
            raise Conflict(f"'{model.id}' is {model.status}{reason}; it cannot run now.")
        return ModelSpec(
            model_id=model.id,
            path=self.models_dir / model.local_path,
            format=model.format,
            modality=model.modality,
            size_bytes=model.size_bytes,
        )

    async def local_spec(self, session: AsyncSession, model_id: str) -> ModelSpec:
        """The spec of a registered local model, to load by hand: 404 for an unknown
        id, 409 for a provider model or one whose files are not usable now."""
        model = await self.get(session, model_id)
        if model.provider != "local":
            raise Conflict(f"'{model_id}' is a provider model; only local models load here.")
        return self.spec_of(model)

    async def pinned_ids(self, session: AsyncSession) -> set[str]:
        """The default of each modality that generates and the models pinned by hand.
        The embedding default is not pinned: with the text default it would fill the
        default two slots (max_loaded_models) for good, and no other local model could
        load; it loads again in a moment when evicted. Pin it by hand to keep it."""
        repo = RegistryRepository(session)
        pinned = {m.id for m in await repo.all() if m.pinned}
        return pinned | set(_pinned_defaults(await repo.defaults()).values())

    async def repin(self, session: AsyncSession) -> None:
        """Hand residency the pinned set (at startup, and after a default changes or a
        model is deleted), so it never evicts a default."""
        self.runtimes.pin(await self.pinned_ids(session))

    async def parameter_schema(self, session: AsyncSession, model: Model) -> dict[str, Any]:
        row = await RegistryRepository(session).latest_schema(model.id)
        return row.schema if row is not None else self._default_schema(model)

    def info_of(self, model: Model, defaults: dict[str, str], is_admin: bool) -> ModelInfo:
        local = model.provider == "local"
        state = self.runtimes.state(model.id) if local else None
        return ModelInfo(
            id=model.id,
            name=model.name,
            version=model.version or model.source_revision or "latest",
            provider=model.provider,
            modality=model.modality,
            description=model.description,
            capabilities=Capabilities.model_validate(model.capabilities or {}),
            source=Source(
                type=model.source_type,
                # A file found in the models directory came from there: its path in it.
                uri=model.source_uri or model.local_path or "",
                revision=model.source_revision,
            ),
            format=model.format,
            size_bytes=model.size_bytes,
            local_path=str(self.models_dir / model.local_path)
            if is_admin and model.local_path
            else None,
            status=model.status,
            status_reason=model.status_reason,
            runtime_status=state.status if state else None,
            queue_depth=state.queue_depth if state else 0,
            is_default=defaults.get(model.modality) == model.id,
            pinned=model.pinned or _pinned_defaults(defaults).get(model.modality) == model.id,
            last_used_at=model.last_used_at,
            created_at=model.created_at,
            updated_at=model.updated_at,
            availability=Availability(
                provider=model.provider,
                access="available" if model.status == "available" else "locked",
            ),
        )

    # writing
    async def register(
        self,
        session: AsyncSession,
        model: Model,
        *,
        doc_status: str | None = None,
        doc_summary: str | None = None,
    ) -> Model:
        """Add a model with its default parameter schema (version 1) and, for models
        with documentation to gather (or given), a doc row."""
        repo = RegistryRepository(session)
        if await repo.get(model.id) is not None:
            raise Conflict(f"A model '{model.id}' is already registered.")
        await repo.add(model)
        await repo.add(
            ModelSchema(model_id=model.id, version=1, schema=self._default_schema(model))
        )
        if doc_status is not None:
            await repo.add(
                ModelDoc(
                    model_id=model.id,
                    status=doc_status,
                    summary=doc_summary,
                    parameters={},
                    tags=[],
                )
            )
        return model

    async def set_default(self, session: AsyncSession, model_id: str) -> ModelInfo:
        model = await self.get(session, model_id)
        if model.status != "available":
            raise Conflict(
                f"'{model_id}' is {model.status}; only an available model can be default."
            )
        repo = RegistryRepository(session)
        await repo.set_default(model.modality, model.id)
        await self.repin(session)  # pinned while default (of a modality that generates)
        return self.info_of(model, await repo.defaults(), is_admin=True)

    async def delete(self, session: AsyncSession, model_id: str) -> None:
        model = await self.get(session, model_id)
        if self.runtimes.state(model_id).in_use:
            raise Conflict(f"'{model_id}' is loaded or in use; unload it first.")
        repo = RegistryRepository(session)
        await repo.clear_default(model_id)
        await repo.delete(model)
        await self.repin(session)
        if model.owns_files and model.local_path:
            path = self.confined(model.local_path)
            # Only once the row is gone for good: a failed commit keeps files and row.
            event.listen(
                session.sync_session, "after_commit", lambda _s: self._remove_later(path), once=True
            )

    def confined(self, relative: str) -> Path:
        """The absolute path of a registry path, refusing anything outside models_dir."""
        root = self.models_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValidationFailed(f"Path '{relative}' is outside the models directory.")
        return path

    def _remove_later(self, path: Path) -> None:
        """Deleting gigabytes takes a while: do it in a worker thread, off the loop."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._remove_files, path))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    def _remove_files(self, path: Path) -> None:
        """The model's file or folder, every shard of a sharded GGUF, and the folders
        left empty above it (up to the models directory)."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            shard = SHARD.search(path.name)
            prefix = path.name[: shard.start()] if shard else None
            siblings = path.parent.glob(f"{glob.escape(prefix)}*") if prefix else ()
            for file in [path, *(s for s in siblings if SHARD.search(s.name))]:
                file.unlink(missing_ok=True)
        root = self.models_dir.resolve()
        parent = path.parent
        while parent != root and parent.is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def _default_schema(self, model: Model) -> dict[str, Any]:
        capabilities = model.capabilities or {}
        return default_schema(
            model.id,
            model.modality,
            capabilities.get("max_context_tokens"),
            capabilities.get("embedding_dimensions"),
        )


def _pinned_defaults(defaults: dict[str, str]) -> dict[str, str]:
    """The defaults that are pinned: every modality's but embedding's (see pinned_ids)."""
    return {modality: model for modality, model in defaults.items() if modality != "embedding"}
