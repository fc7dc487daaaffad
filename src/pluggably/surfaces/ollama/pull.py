"""``pull`` over the download jobs (the same as ``POST /v1/models/download``): a name
``hf.co/{owner}/{repo}:{quant}`` (or ``huggingface.co/…``, or ``{owner}/{repo}:{quant}``)
downloads that repo's GGUF of that quantization, registered under the name's one
spelling (translate.model_name: ``hf.co/``, the quantization upper case, no ``:latest``),
so any spelling of it then chats. Without a quantization (or with
``latest``) the download's own choice applies (Q4_K_M first). Progress is Ollama's:
``pulling manifest``, ``pulling <digest>`` lines with ``total``/``completed``, then
``verifying sha256 digest``, ``writing manifest``, ``success``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pluggably.downloads.manager import DownloadManager
from pluggably.downloads.schemas import DownloadRequest, DownloadSource, TargetModel
from pluggably.downloads.sources import gguf_firsts, is_projector
from pluggably.errors import InvalidParameter, ModelNotFound, UpstreamError
from pluggably.registry.hub import HubClient
from pluggably.surfaces.ollama.translate import model_name

_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class Pull:
    model_id: str  # the registry id: the name's one spelling (model_name)
    repo: str
    quant: str | None


def parse(name: str) -> Pull:
    model_id = model_name(name.strip())
    bare = model_id.removeprefix("hf.co/")
    repo, _, quant = bare.rpartition(":") if ":" in bare else (bare, "", "")
    if not _REPO.match(repo):
        raise InvalidParameter(
            f"Cannot pull '{name}': only Hugging Face repos pull here, as "
            "hf.co/{owner}/{repo}:{quantization} (e.g. hf.co/bartowski/Llama-3.2-1B-"
            "Instruct-GGUF:Q4_K_M); Ollama's library is not reachable from this server."
        )
    return Pull(model_id=model_id, repo=repo, quant=quant or None)


async def choose_file(hub: HubClient, pull: Pull) -> tuple[str | None, str]:
    """The GGUF file of the quantization asked for (its first shard), or None to let
    the download choose; and a sha256 digest naming the pull's blob in progress lines
    (the file's LFS hash where the hub has it)."""
    info = await hub.model_info(pull.repo)
    siblings = {s.rfilename: s for s in info.siblings or []}
    ggufs = gguf_firsts(list(siblings))
    chosen: str | None = None
    if pull.quant is not None:
        wanted = re.compile(rf"(?<![A-Za-z0-9]){re.escape(pull.quant)}(?![A-Za-z0-9_])", re.I)
        # a vision repo's projector (mmproj-…) often shares the quantization: last
        matching = sorted((n for n in ggufs if wanted.search(n)), key=is_projector)
        if not matching:
            available = ", ".join(ggufs[:30]) or "none"
            raise ModelNotFound(
                f"{pull.repo} has no GGUF file of quantization '{pull.quant}'. Its GGUF "
                f"files: {available}."
            )
        chosen = matching[0]
    named = chosen or (ggufs[0] if ggufs else pull.repo)
    lfs = getattr(siblings.get(named), "lfs", None)
    sha = (
        getattr(lfs, "sha256", None) or hashlib.sha256(f"{pull.repo}/{named}".encode()).hexdigest()
    )
    return chosen, f"sha256:{sha}"


async def start(
    downloads: DownloadManager, hub: HubClient, user_id: str, pull: Pull
) -> tuple[str, str]:
    """The download job of the pull (an existing one for the same file) and its digest."""
    filename, digest = await choose_file(hub, pull)
    body = DownloadRequest(
        model=TargetModel(id=pull.model_id),
        source=DownloadSource(type="huggingface", id=pull.repo, filename=filename),
    )
    job, _created = await downloads.submit(user_id, body)
    return job.id, digest


def _status(text: str) -> dict[str, Any]:
    return {"status": text}


DONE = [_status("verifying sha256 digest"), _status("writing manifest"), _status("success")]


async def progress(
    downloads: DownloadManager, job_id: str, digest: str
) -> AsyncIterator[dict[str, Any]]:
    """The job's progress as Ollama's lines, ending in ``success`` or ``{"error"}``."""
    yield _status("pulling manifest")
    async for info in downloads.events(job_id):
        if info.status in ("queued", "running"):
            yield {
                "status": f"pulling {digest.removeprefix('sha256:')[:12]}",
                "digest": digest,
                "total": info.bytes_total or 0,
                "completed": info.bytes_done,
            }
        elif info.status == "completed":
            for line in DONE:
                yield line
        else:
            yield {"error": info.error or f"The download was {info.status}."}


async def outcome(downloads: DownloadManager, job_id: str) -> None:
    """Wait for the job to end (``stream: false``); a failure is raised as its error."""
    async for info in downloads.events(job_id):
        if info.status == "completed":
            return
        if info.status in ("failed", "cancelled"):
            raise UpstreamError(info.error or f"The download was {info.status}.")
