"""The Ollama API over the bundled Gemma GGUF (llama.cpp) with the official `ollama`
client: chat and generate plain and streamed, a JSON Schema ``format``, ``ps``, the
load and unload calls, and ``keep_alive`` driving residency (GET /v1/models/loaded)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jsonschema
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import client_for, make_settings, new_user, running
from tests.surfaces.ollama.test_ollama_api import ADMIN, ollama_client

MODEL = "local/gemma"
SHORT = {"num_predict": 8, "temperature": 0}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}

pytestmark = pytest.mark.slow


def gemma_app(tmp_path: Path, database_url: str, gemma_gguf: Path) -> FastAPI:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    os.link(gemma_gguf, models / "gemma.gguf")
    return create_app(make_settings(tmp_path, database_url, preload_defaults=False))


async def loaded(client: httpx.AsyncClient) -> list[str]:
    body = (await client.get("/v1/models/loaded", headers=ADMIN)).json()
    return [m["model_id"] for m in body["models"]]


async def unloads(client: httpx.AsyncClient, timeout: float = 10, model: str = MODEL) -> bool:
    """The model is gone from residency within ``timeout`` (keep_alive 0 unloads it
    after the answer)."""
    deadline = time.monotonic() + timeout
    while model in await loaded(client):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_chat_and_generate_plain_streamed_and_json(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    async with running(app):
        api = ollama_client(app)
        chat = await api.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "The capital of France is"}],
            options=SHORT,
        )
        assert chat.model == MODEL
        assert chat.message.content
        assert chat.done_reason == "length"
        assert chat.eval_count == 8
        assert chat.load_duration is not None
        assert chat.load_duration > 0  # this request waited for the load

        parts = [
            p
            async for p in await api.chat(
                model=f"{MODEL}:latest",
                messages=[{"role": "user", "content": "Once upon a time"}],
                options={"num_predict": 12, "temperature": 0},
                stream=True,
            )
        ]
        assert len([p for p in parts if p.message.content]) > 3  # real tokens, one by one
        assert parts[-1].done is True
        assert parts[-1].eval_count == 12

        answer = await api.generate(model=MODEL, prompt="Once upon a time", options=SHORT)
        assert answer.response
        assert answer.eval_count == 8
        streamed = [
            p
            async for p in await api.generate(
                model=MODEL, prompt="Once upon a time", options=SHORT, stream=True
            )
        ]
        assert "".join(p.response or "" for p in streamed)
        assert streamed[-1].done_reason == "length"

        shaped = await api.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "A person as JSON:"}],
            format=PERSON,
            options={"num_predict": 60, "temperature": 0},
        )
        jsonschema.validate(json.loads(shaped.message.content or ""), PERSON)


async def test_ps_load_and_keep_alive_drive_residency(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    async with running(app), client_for(app, timeout=60) as client:
        api = ollama_client(app)
        # The default of its modality is pinned: only an admin's keep_alive unloads it.
        made = await client.post(f"/v1/models/{MODEL}/default", headers=ADMIN)
        assert made.status_code == 200, made.text

        shown = await api.show(f"{MODEL}:latest")
        assert shown.capabilities is not None
        assert shown.capabilities[0] == "completion"
        assert shown.details is not None
        assert shown.details.format == "gguf"
        assert shown.details.quantization_level == "Q4_K_M"
        assert shown.modelinfo is not None
        assert shown.modelinfo["pluggably.context_length"] > 0

        load = await api.generate(model=MODEL)  # Ollama's load call: no prompt
        assert (load.done, load.done_reason) == (True, "load")
        assert await loaded(client) == [MODEL]
        ps = (await api.ps()).models
        assert [m.model for m in ps] == [MODEL]
        assert ps[0].size is not None
        assert ps[0].size > 0
        assert ps[0].expires_at is not None
        assert ps[0].expires_at.year == 9999  # pinned: stays

        await api.generate(model=MODEL, prompt="Hi", options=SHORT, keep_alive="1h")
        expires = (await api.ps()).models[0].expires_at
        assert expires is not None
        in_an_hour = datetime.now(UTC) + timedelta(hours=1)
        assert abs((expires - in_an_hour).total_seconds()) < 60

        # A user's keep_alive 0 leaves the pinned default loaded.
        user = ollama_client(app, await new_user(client, "olga"))
        await user.chat(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], options=SHORT, keep_alive=0
        )
        assert not await unloads(client, timeout=0.5)

        # An admin's unloads it after the answer (the answer is whole).
        answer = await api.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Once upon a time"}],
            options=SHORT,
            keep_alive=0,
        )
        assert answer.done is True
        assert answer.message.content
        assert await unloads(client)
        assert (await api.ps()).models == []

        # Streamed too; and Ollama's unload call.
        await api.generate(model=MODEL, keep_alive=-1)
        kept = (await api.ps()).models[0].expires_at
        assert kept is not None
        assert kept.year == 9999
        unload = await api.generate(model=MODEL, keep_alive=0)
        assert unload.done_reason == "unload"
        assert await unloads(client)
        parts = [
            p
            async for p in await api.generate(
                model=MODEL, prompt="Hi", options=SHORT, keep_alive="0s", stream=True
            )
        ]
        assert parts[-1].done is True
        assert await unloads(client)

        # delete unloads a loaded model first, then unregisters it.
        await api.generate(model=MODEL)
        assert await loaded(client) == [MODEL]
        assert (await api.delete(MODEL)).status == "success"
        assert await loaded(client) == []
        assert (await client.get(f"/v1/models/{MODEL}", headers=ADMIN)).status_code == 404
