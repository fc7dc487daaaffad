"""Ollama's load and unload calls: a chat without messages, or a generate without a
prompt, loads the model (``done_reason: load``); with ``keep_alive: 0`` it unloads it
once idle (``unload``). For a provider model there is nothing to load: the answer is
the same. A pinned model (a modality's default) unloads only for an admin."""

from __future__ import annotations

import orjson
from fastapi import Response
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.catalog.service import ModelCatalog
from pluggably.lifecycle.residency import ResidencyService
from pluggably.surfaces.ollama.keep_alive import KeepAlive
from pluggably.surfaces.ollama.keep_alive import apply as apply_keep_alive
from pluggably.surfaces.ollama.stream import MEDIA_TYPE
from pluggably.surfaces.ollama.translate import Kind, model_name, now


async def load_or_unload(
    kind: Kind,
    shown: str,
    keep: KeepAlive | None,
    principal: Principal,
    session: AsyncSession,
    catalog: ModelCatalog,
    residency: ResidencyService,
    stream: bool,
) -> Response:
    info = await catalog.details(session, principal, model_name(shown))  # 404: unknown
    unloading = keep is not None and keep.seconds == 0
    if info.provider == "local":
        if not unloading:
            await residency.load(session, info.id, wait=True)
        apply_keep_alive(residency, info.id, keep, is_admin=principal.is_admin)
    answer: dict[str, object] = {"model": shown, "created_at": now()}
    if kind == "chat":
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    answer |= {"done": True, "done_reason": "unload" if unloading else "load"}
    media = MEDIA_TYPE if stream else "application/json"
    return Response(orjson.dumps(answer) + (b"\n" if stream else b""), media_type=media)
