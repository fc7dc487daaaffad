"""Turning a download request into a plan: which files, from which URLs, into which
folder under the models directory, registered as which model."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from pluggably.downloads.schemas import DownloadRequest
from pluggably.errors import InvalidParameter, ModelNotFound, UpstreamError
from pluggably.netguard import check_public_url
from pluggably.registry.hub import HubClient

# Preferred GGUF quantizations, best trade-off first.
QUANT_PREFERENCE = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q5_K_S", "Q5_0", "Q6_K", "Q8_0")
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
# Weights for frameworks the runtimes do not load.
_SKIP = re.compile(
    r"(^|/)(\.gitattributes|.*\.(h5|msgpack|ot|onnx|onnx_data|tflite|mlmodel|pb)|(tf|flax|onnx|openvino|coreml)_.*)$",
    re.IGNORECASE,
)
_PIPELINE_MODALITY = {
    "text-generation": "text",
    "text2text-generation": "text",
    "conversational": "text",
    "image-text-to-text": "text",
    "text-to-image": "image",
    "image-to-image": "image",
    "text-to-3d": "3d",
    "image-to-3d": "3d",
}


@dataclass
class PlannedFile:
    path: str  # inside the destination folder
    url: str
    size: int | None
    sha256: str | None = None


@dataclass
class Plan:
    model_id: str
    name: str
    dest: str  # folder relative to the models directory
    files: list[PlannedFile]
    source_type: str
    source_uri: str
    revision: str | None
    modality: str | None
    version: str | None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    needs_hub_auth: bool = False

    @property
    def total_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        files = [PlannedFile(**f) for f in data["files"]]
        return cls(**{**data, "files": files})


def source_key(body: DownloadRequest) -> str:
    s = body.source
    where = s.id if s.type == "huggingface" else s.uri
    return f"{s.type}|{where}|{s.revision or 'main'}|{s.filename or ''}"


def safe_segment(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "model"
    return cleaned[:120]


def model_folder(kind: str, model_id: str) -> str:
    """Each model gets a folder of its own, named after its (unique) id, so deleting
    one model can never take another's files."""
    return f"{kind}/" + "/".join(
        safe_segment(part) for part in model_id.replace(":", "/").split("/")
    )


def safe_relative(path: str) -> str:
    """A repo path made safe as a relative path: no '..', no absolute, tame names."""
    parts = PurePosixPath(path).parts
    if not parts or any(p in {"..", "/"} for p in parts):
        raise InvalidParameter(f"Refusing the file path '{path}'.")
    return "/".join(safe_segment(p) for p in parts)


async def plan_huggingface(hub: HubClient, body: DownloadRequest) -> Plan:
    repo = body.source.id or ""
    info = await hub.model_info(repo, body.source.revision)
    if info.gated and not hub.token:
        raise UpstreamError(
            f"{repo} is gated: accept its license on the hub, then set PLUGGABLY_HF_TOKEN "
            "to a token of that account."
        )
    siblings = {s.rfilename: s for s in info.siblings or []}
    chosen = _choose_files(list(siblings), body.source.filename)
    revision = info.sha or body.source.revision or "main"
    files = []
    for name in chosen:
        sibling = siblings[name]
        lfs = getattr(sibling, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        files.append(
            PlannedFile(
                path=safe_relative(name),
                url=hub.file_url(repo, name, revision),
                size=sibling.size,
                sha256=sha,
            )
        )
    gguf = [f for f in chosen if f.lower().endswith(".gguf")]
    quant = _quant(gguf[0]) if gguf else None
    _owner, _, name = repo.partition("/")
    model_id = body.model.id or (
        repo if not body.source.filename else f"{repo}/{PurePosixPath(chosen[0]).stem}"
    )
    modality = body.model.modality or _PIPELINE_MODALITY.get(info.pipeline_tag or "")
    if modality is None and (info.library_name == "diffusers" or "diffusers" in (info.tags or [])):
        modality = "image"
    return Plan(
        model_id=model_id,
        name=body.model.name or name,
        dest=model_folder("hf", model_id),
        files=files,
        source_type="huggingface",
        source_uri=repo,
        revision=revision,
        modality=modality,
        version=body.model.version or quant,
        tags=list(info.tags or []),
        needs_hub_auth=True,
    )


def _quant(filename: str) -> str | None:
    upper = filename.upper()
    return next((q for q in QUANT_PREFERENCE if q in upper), None)


def gguf_firsts(names: list[str]) -> list[str]:
    """The GGUF files of a listing that begin a model: whole files, and the first shard
    of a split one (``-00001-of-00003.gguf``), sorted."""
    return sorted(
        n
        for n in names
        if n.lower().endswith(".gguf") and (not (m := _SHARD.search(n)) or m.group(1) == "00001")
    )


def is_projector(name: str) -> bool:
    """A vision model's projector (``mmproj-…``), which sits beside the model's GGUF."""
    return "mmproj" in name.rsplit("/", 1)[-1].lower()


def _choose_files(names: list[str], wanted: str | None) -> list[str]:
    ggufs = sorted(n for n in names if n.lower().endswith(".gguf"))
    if wanted:
        if wanted not in names:
            listing = ", ".join(ggufs[:20] or names[:20])
            raise ModelNotFound(f"The repo has no file '{wanted}'. Files: {listing}")
        first = wanted
    elif ggufs:
        # A vision repo's projector (mmproj-…) is never the model, whatever its quant.
        ranked = sorted(
            gguf_firsts(ggufs),
            key=lambda n: (
                is_projector(n),
                QUANT_PREFERENCE.index(q) if (q := _quant(n)) else len(QUANT_PREFERENCE),
                n,
            ),
        )
        first = ranked[0]
    else:
        files = [n for n in names if not _SKIP.search(n)]
        if any(n.endswith(".safetensors") for n in files):
            files = [n for n in files if not (n.endswith(".bin") and "pytorch_model" in n)]
        if not files:
            raise ModelNotFound("The repo has no files the local runtimes can use.")
        return sorted(files)
    shard = _SHARD.search(first)
    if shard:
        prefix = first[: shard.start()]
        return sorted(n for n in ggufs if n.startswith(prefix) and _SHARD.search(n))
    return [first]


async def plan_url(body: DownloadRequest, *, allow_private: bool) -> Plan:
    url = body.source.uri or ""
    await check_public_url(url, allow_private=allow_private, purpose="download")
    parts = urlsplit(url)
    filename = safe_segment(unquote(PurePosixPath(parts.path).name))
    if not filename.lower().endswith(".gguf"):
        raise InvalidParameter(
            "URL downloads take a single .gguf file; use a huggingface source for other formats."
        )
    host = safe_segment(parts.hostname or "host")
    stem = filename[: -len(".gguf")]
    return Plan(
        model_id=(model_id := body.model.id or f"url/{host}/{stem}"),
        name=body.model.name or stem,
        dest=model_folder("url", model_id),
        files=[PlannedFile(path=filename, url=url, size=None, sha256=None)],
        source_type="url",
        source_uri=url,
        revision=None,
        modality=body.model.modality or "text",
        version=body.model.version or _quant(filename),
    )
