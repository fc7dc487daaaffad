"""Hugging Face search for operators choosing what to download."""

from __future__ import annotations

import asyncio
import base64
import binascii

from huggingface_hub.hf_api import ModelInfo as HubModelInfo

from pluggably.errors import ValidationFailed
from pluggably.registry.hub import HubClient
from pluggably.registry.schemas import GgufFile, SearchPage, SearchResult

PIPELINES = {
    "text": ["text-generation"],
    "image": ["text-to-image"],
    "3d": ["text-to-3d", "image-to-3d"],
    "embedding": ["sentence-similarity", "feature-extraction"],
}
_HINTS = {tag: modality for modality, tags in PIPELINES.items() for tag in tags}
MAX_GGUF_DETAILS = 20
MAX_OFFSET = 1000


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        if not 0 <= value <= MAX_OFFSET:  # a crafted cursor must not page through the hub
            raise ValueError
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from the previous page.",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor"}],
        ) from None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _hints(info: HubModelInfo) -> list[str]:
    tags = set(info.tags or [])
    hints = {_HINTS[info.pipeline_tag]} if info.pipeline_tag in _HINTS else set()
    if info.library_name == "sentence-transformers" or "sentence-transformers" in tags:
        hints.add("embedding")
    # An embedding model's GGUF or transformers files do not generate text.
    generates = "embedding" not in hints
    if generates and ("gguf" in tags or info.library_name in {"transformers", "gguf"}):
        hints.add("text")
    if info.library_name == "diffusers" or "diffusers" in tags:
        hints.add("3d" if "shap-e" in tags else "image")
    return sorted(hints)


async def search(
    hub: HubClient, query: str | None, modality: str | None, limit: int, cursor: str | None
) -> SearchPage:
    offset = _offset(cursor)
    pipelines = PIPELINES.get(modality or "", [None])

    def run() -> list[HubModelInfo]:
        found: list[HubModelInfo] = []
        for pipeline in pipelines:
            found += hub.api.list_models(
                search=query or None,
                pipeline_tag=pipeline,
                sort="downloads",
                limit=offset + limit + 1,
                full=True,
            )
        found.sort(key=lambda m: -(m.downloads or 0))
        return found[offset : offset + limit + 1]

    infos = await hub.call(run)
    page, more = infos[:limit], len(infos) > limit
    gguf_ids = [m.id for m in page if "gguf" in (m.tags or [])][:MAX_GGUF_DETAILS]
    details = await asyncio.gather(
        *(hub.model_info(repo) for repo in gguf_ids), return_exceptions=True
    )
    files = {  # a repo whose details fail just lists no files
        d.id: [
            GgufFile(filename=s.rfilename, size_bytes=s.size)
            for s in d.siblings or []
            if s.rfilename.lower().endswith(".gguf")
        ]
        for d in details
        if not isinstance(d, BaseException)
    }
    return SearchPage(
        results=[
            SearchResult(
                id=m.id,
                name=m.id.split("/")[-1],
                author=m.author or (m.id.split("/")[0] if "/" in m.id else None),
                tags=list(m.tags or []),
                modality_hints=_hints(m),
                pipeline_tag=m.pipeline_tag,
                downloads=m.downloads,
                likes=m.likes,
                last_modified=m.last_modified,
                gated=bool(m.gated),
                files=files.get(m.id),
                download_source={"type": "huggingface", "id": m.id},
            )
            for m in page
        ],
        next_cursor=_cursor(offset + limit) if more else None,
    )
