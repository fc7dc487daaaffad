"""``source.type: local`` (API.md §4): register a file or folder that is already under
the models directory. Nothing is transferred, so the job is complete when it is made."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePath

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import utcnow
from pluggably.downloads.models import DownloadJob
from pluggably.downloads.repository import DownloadRepository
from pluggably.downloads.schemas import DownloadRequest
from pluggably.errors import Conflict, InvalidParameter, ModelNotFound
from pluggably.registry import scan
from pluggably.registry.service import RegistryService


def source_key(local_path: str) -> str:
    """Equal keys mean the same registration (the path as the registry stores it)."""
    return f"local|{local_path}"


def confined_path(models_dir: Path, uri: str) -> str:
    """Blocking: the path of a local source relative to the models directory.

    Relative paths are taken from the models directory; absolute ones must lie inside
    it. No ``..`` segment, and no symlink that leads out of the directory. Whether
    something outside exists is never probed: those paths fail before any lookup."""
    root = models_dir.resolve()
    given = PurePath(uri.removeprefix("file://"))
    if ".." in given.parts:
        raise InvalidParameter(f"source.uri '{uri}' has a '..' segment; name the path plainly.")
    outside = InvalidParameter(
        f"source.uri '{uri}' is outside the models directory: a local source registers "
        "a file or folder already under it (copy the files there first)."
    )
    try:
        path = (root / given).resolve()  # an absolute `given` replaces root; symlinks followed
        if path == root or not path.is_relative_to(root):
            raise outside
        relative = path.relative_to(root)
        if relative.parts[0] == scan.STAGING_DIR:
            raise InvalidParameter(f"source.uri '{uri}' is in the downloads' staging folder.")
        if not path.exists():
            raise ModelNotFound(f"Nothing at source.uri '{uri}' in the models directory.")
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop, …
        raise InvalidParameter(f"source.uri '{uri}' cannot be read as a path: {exc}.") from None
    return relative.as_posix()


async def register(
    session: AsyncSession, registry: RegistryService, user_id: str, body: DownloadRequest
) -> tuple[DownloadJob, bool]:
    """The completed job of this registration: an earlier one for the same path, or a
    new one. A path that discovery registered already keeps its model id."""
    _refuse_ignored_fields(body)
    found = await _describe(registry.models_dir, body.source.uri or "")
    key = source_key(found.local_path)
    repo = DownloadRepository(session)
    done = await repo.completed_by_key(key)
    if done is not None and await registry.exists(session, done.model_id):
        if body.model.id not in (None, done.model_id):
            raise Conflict(
                f"'{found.local_path}' is registered already, as '{done.model_id}'; one "
                "model per file or folder."
            )
        return done, False
    model_id = await _registered_as(session, registry, found.local_path, body.model.id)
    if model_id is None:
        model_id = await _register_new(session, registry, repo, found, body)
    job = DownloadJob(
        model_id=model_id,
        source_key=key,
        request=body.model_dump(mode="json"),
        plan=None,
        status="completed",
        bytes_done=found.size_bytes,
        bytes_total=found.size_bytes,
        created_by=user_id,
        finished_at=utcnow(),
    )
    await repo.add(job)
    return job, True


def _refuse_ignored_fields(body: DownloadRequest) -> None:
    ignored = [
        name
        for name, value in (
            ("source.id", body.source.id),
            ("source.filename", body.source.filename),
            ("source.revision", body.source.revision),
            ("options.sha256", body.options.sha256),
        )
        if value is not None
    ]
    if ignored:  # silently skipping a checksum would let the caller believe it was checked
        raise InvalidParameter(
            f"A local source takes only source.uri; {', '.join(ignored)} would be ignored."
        )


async def _describe(root: Path, uri: str) -> scan.Found:
    """The one model at ``uri`` under the models directory."""
    relative = await asyncio.to_thread(confined_path, root, uri)
    try:
        found = await asyncio.to_thread(scan.describe_one, root, relative)
    except ValueError as several:
        raise InvalidParameter(
            f"source.uri '{uri}' holds several models ({several}, …); name one of them."
        ) from None
    if found is None:
        raise InvalidParameter(
            f"source.uri '{uri}' is not a model the local runtimes know "
            "(a GGUF file, or a transformers, diffusers or Shap-E folder)."
        )
    return found


async def _register_new(
    session: AsyncSession,
    registry: RegistryService,
    repo: DownloadRepository,
    found: scan.Found,
    body: DownloadRequest,
) -> str:
    """Register files no model has yet, under the requested id or the one they
    suggest; refused while that id is taken or being downloaded."""
    model_id = body.model.id or found.model_id
    busy = await repo.active_by_model(model_id)
    if busy is not None:
        raise Conflict(
            f"A download of model '{model_id}' is running (job {busy.id}); cancel it "
            "or pass another model.id."
        )
    if await registry.exists(session, model_id):
        raise Conflict(
            f"A model '{model_id}' is already registered; pass model.id to register "
            "these files under another id."
        )
    model = scan.as_model(found, origin="registered")
    model.id, model.name = model_id, body.model.name or found.name
    model.version = body.model.version or found.version
    model.modality = body.model.modality or found.modality
    model.source_uri = found.local_path
    await registry.register(session, model)
    return model_id


async def _registered_as(
    session: AsyncSession, registry: RegistryService, local_path: str, wanted: str | None
) -> str | None:
    """The id a local model with these files has already (discovery registers what it
    finds at startup); None when there is none."""
    existing = next(
        (m for m in await registry.all(session) if m.local_path == local_path),
        None,
    )
    if existing is None:
        return None
    if wanted is not None and wanted != existing.id:
        raise Conflict(
            f"'{local_path}' is registered already, as '{existing.id}'; one model per "
            "file or folder."
        )
    return existing.id
