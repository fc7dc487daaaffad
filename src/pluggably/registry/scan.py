"""Recognising model files under the models directory (at startup, for downloads and
local registrations alike) and reconciling what was found with the registry.

Recognises GGUF files (text generators, and embedding models by their header),
sentence-transformers folders (modules.json: embedding models), transformers folders
(config.json + weights), diffusers folders (model_index.json) and Shap-E pipelines.
Discovered models are registered as local models; rows that operators registered or
downloaded are never rewritten; a model whose files vanished is marked failed until
they come back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.observability.logging import get_logger
from pluggably.registry.embedders import embeds, sentence_transformers_capabilities
from pluggably.registry.gguf_header import read_fields
from pluggably.registry.models import Model
from pluggably.registry.repository import RegistryRepository
from pluggably.runtimes.prompts import takes_tools

log = get_logger("pluggably.discovery")

MISSING = "model files are missing from the models directory"
STAGING_DIR = ".downloads"
MAX_DEPTH = 4
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(IQ\d_[A-Z]{1,3}|Q\d_K_[SML]|Q\d_K|Q\d_\d|Q\d|BF16|F16|F32)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_WEIGHTS = (".safetensors", ".bin")
_SENTENCE_TRANSFORMERS = {"modules.json", "config_sentence_transformers.json"}


@dataclass(frozen=True)
class Found:
    local_path: str  # relative to the models directory, posix separators
    name: str
    modality: str
    format: str
    size_bytes: int
    version: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        path = SHARD.sub(".gguf", self.local_path) if self.format == "gguf" else self.local_path
        return "local/" + path.removesuffix(".gguf")


def scan(models_dir: Path) -> list[Found]:
    """Blocking: walk the models directory (no symlinks followed out of it)."""
    root = models_dir.resolve()
    if not root.is_dir():
        return []
    return sorted(_walk(root, root, 0), key=lambda f: f.local_path)


def _walk(root: Path, directory: Path, depth: int) -> Iterator[Found]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    names = {e.name for e in entries}
    if depth > 0 and "model_index.json" in names:
        yield from _diffusers(root, directory)
        return
    if depth > 0 and names & _SENTENCE_TRANSFORMERS:
        yield _sentence_transformers(root, directory)
        return
    if depth > 0 and "config.json" in names and any(n.endswith(_WEIGHTS) for n in names):
        yield _transformers(root, directory, entries)
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
            yield from _walk(root, Path(entry.path), depth + 1)
        elif entry.name.lower().endswith(".gguf") and entry.is_file(follow_symlinks=False):
            found = _gguf(root, Path(entry.path), entries)
            if found is not None:
                yield found


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def dir_size(directory: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(base, name), follow_symlinks=False).st_size
    return total


def _gguf(root: Path, path: Path, siblings: list[os.DirEntry[str]]) -> Found | None:
    shard = SHARD.search(path.name)
    if shard and shard.group(1) != "00001":
        return None  # later shards belong to the first one
    if shard:
        prefix = path.name[: shard.start()]
        size = sum(
            e.stat().st_size for e in siblings if e.name.startswith(prefix) and SHARD.search(e.name)
        )
    else:
        size = path.stat().st_size
    quant_match = _QUANT.search(path.stem)
    meta = _gguf_metadata(path)
    quant = quant_match.group(1).upper() if quant_match else meta.get("quantization")
    embeds = bool(meta.get("embedding"))
    output = "embedding" if embeds else "text"
    capabilities: dict[str, Any] = {"output_formats": [output], "input_modalities": ["text"]}
    if meta.get("context_length"):
        capabilities["max_context_tokens"] = meta["context_length"]
    if embeds and meta.get("embedding_length"):
        capabilities["embedding_dimensions"] = meta["embedding_length"]
    if meta.get("tool_calling") and not embeds:
        capabilities["tool_calling"] = True
    return Found(
        local_path=_relative(root, path),
        name=SHARD.sub("", path.name).removesuffix(".gguf") if shard else path.stem,
        modality=output,
        format="gguf",
        size_bytes=size,
        version=quant,
        capabilities=capabilities,
    )


def _gguf_metadata(path: Path) -> dict[str, Any]:
    """Quantization, context length and whether the chat template takes tools (then
    the model may choose to call one) from the GGUF header (the quantization's name
    needs the optional ``gguf`` package); an unreadable header just yields nothing."""
    try:
        fields = read_fields(path)
    except (OSError, ValueError):  # a truncated or foreign file is still listed
        return {}
    out: dict[str, Any] = {}
    arch = fields.get("general.architecture")
    context = fields.get(f"{arch}.context_length") if isinstance(arch, str) else None
    if isinstance(context, int):
        out["context_length"] = context
    if isinstance(arch, str) and embeds(fields, arch):
        out["embedding"] = True
        width = fields.get(f"{arch}.embedding_length")
        if isinstance(width, int):
            out["embedding_length"] = width
    template = fields.get("tokenizer.chat_template")
    if isinstance(template, str) and takes_tools(template):
        out["tool_calling"] = True
    file_type = fields.get("general.file_type")
    if isinstance(file_type, int):
        try:
            from gguf import LlamaFileType

            out["quantization"] = LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        except (ImportError, ValueError):
            pass
    return out


def _sentence_transformers(root: Path, directory: Path) -> Found:
    return Found(
        local_path=_relative(root, directory),
        name=directory.name,
        modality="embedding",
        format="sentence_transformers",
        size_bytes=dir_size(directory),
        capabilities=sentence_transformers_capabilities(directory),
    )


def _transformers(root: Path, directory: Path, entries: list[os.DirEntry[str]]) -> Found:
    capabilities: dict[str, Any] = {"output_formats": ["text"], "input_modalities": ["text"]}
    try:
        config = json.loads((directory / "config.json").read_text())
        context = config.get("max_position_embeddings") or config.get("n_positions")
        if isinstance(context, int):
            capabilities["max_context_tokens"] = context
    except (OSError, ValueError):
        pass
    return Found(
        local_path=_relative(root, directory),
        name=directory.name,
        modality="text",
        format="transformers",
        size_bytes=dir_size(directory),
        capabilities=capabilities,
    )


def _diffusers(root: Path, directory: Path) -> Iterator[Found]:
    try:
        index = json.loads((directory / "model_index.json").read_text())
    except (OSError, ValueError):
        return
    shap_e = str(index.get("_class_name", "")).startswith("ShapE")
    yield Found(
        local_path=_relative(root, directory),
        name=directory.name,
        modality="3d" if shap_e else "image",
        format="shap_e" if shap_e else "diffusers",
        size_bytes=dir_size(directory),
        capabilities={
            "output_formats": ["obj", "glb", "ply"] if shap_e else ["png"],
            "input_modalities": ["text"] if shap_e else ["text", "image"],
        },
    )


def as_model(found: Found, *, origin: str = "discovered") -> Model:
    return Model(
        id=found.model_id,
        name=found.name,
        version=found.version,
        provider="local",
        modality=found.modality,
        description=None,
        capabilities=found.capabilities,
        source_type="local",
        source_uri=None,
        format=found.format,
        size_bytes=found.size_bytes,
        local_path=found.local_path,
        status="available",
        origin=origin,
        owns_files=False,
        pinned=False,
    )


async def reconcile(
    session: AsyncSession, models_dir: Path, found: list[Found], register: Any
) -> dict[str, int]:
    """Bring the registry in line with what is on disk. ``register`` is the
    registry service's ``register`` (adds schema and docs rows)."""
    repo = RegistryRepository(session)
    existing = await repo.all()
    by_path = {m.local_path: m for m in existing if m.local_path}
    ids = {m.id for m in existing}
    counts = {"added": 0, "updated": 0, "missing": 0, "restored": 0}
    for item in found:
        model = by_path.get(item.local_path)
        if model is None:
            if item.model_id in ids:
                log.warning("discovery_id_taken", model_id=item.model_id, path=item.local_path)
                continue
            await register(session, as_model(item))
            ids.add(item.model_id)
            counts["added"] += 1
        elif model.origin == "discovered" and model.size_bytes != item.size_bytes:
            model.size_bytes = item.size_bytes
            counts["updated"] += 1
    for model in existing:
        if model.provider != "local" or not model.local_path or model.status == "downloading":
            continue
        present = (models_dir / model.local_path).exists()
        if not present and model.status == "available":
            model.status, model.status_reason = "failed", MISSING
            counts["missing"] += 1
        elif present and model.status_reason == MISSING:
            model.status, model.status_reason = "available", None
            counts["restored"] += 1
    await session.flush()
    return counts


def describe(models_dir: Path, relative: str) -> Found | None:
    """Blocking: what a downloaded file or folder is, by the same rules as discovery."""
    root = models_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        return None
    if path.is_file() and path.name.lower().endswith(".gguf"):
        return _gguf(root, path, list(os.scandir(path.parent)))
    if path.is_dir():
        return next(iter(_walk(root, path, 1)), None)
    return None


def describe_one(models_dir: Path, relative: str) -> Found | None:
    """Blocking: like ``describe``, but a folder must hold exactly one model; several
    raise ValueError naming the first two (a registration must not pick one silently)."""
    path = (models_dir.resolve() / relative).resolve()
    if not path.is_dir():
        return describe(models_dir, relative)
    found = list(itertools.islice(_walk(models_dir.resolve(), path, 1), 2))
    if len(found) > 1:
        raise ValueError(f"{found[0].local_path}, {found[1].local_path}")
    return found[0] if found else None
