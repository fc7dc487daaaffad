"""Local inference through /v1/generate: the bundled Gemma 3 270M GGUF on llama.cpp,
under the scheduler (load, queue, 202, cancel, while_loading, lifecycle routes).
A base model: assertions are about plumbing (tokens, counts, frames), not wit."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    deltas,
    generate,
    make_settings,
    running,
    sse_frames,
)
from tests.fixtures.prompts import GREEDY, LONG_RUNNING

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
GEMMA = "local/gemma"
PROMPT = {"prompt": "The capital of France is"}


def local_app(
    tmp_path: Path, database_url: str, gemma_gguf: Path, *names: str, **overrides: Any
) -> FastAPI:
    """An app whose models directory holds the GGUF under each name (hard links)."""
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name in names or ("gemma",):
        target = models / f"{name}.gguf"
        if not target.exists():
            os.link(gemma_gguf, target)
    return create_app(make_settings(tmp_path, database_url, **overrides))


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_gguf_generates_streams_and_counts(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    app = local_app(tmp_path, database_url, gemma_gguf)
    async with running(app), client_for(app, timeout=60) as client:
        listed = (await client.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)).json()
        assert listed["runtime_status"] == "unloaded"

        # Greedy: sampled, the base model may end its turn within a few tokens.
        body = {"model": GEMMA, "input": PROMPT, "parameters": {"max_tokens": 8, **GREEDY}}
        first = await generate(client, ADMIN, **body)
        assert first.status_code == 200, first.text
        answer = first.json()
        assert (answer["provider"], answer["model"], answer["modality"]) == ("local", GEMMA, "text")
        assert answer["selection"]["selected_model"] == f"local:{GEMMA}"
        assert answer["output"]["text"]
        assert answer["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 8
        assert answer["usage"]["prompt_tokens"] > 5
        assert answer["timings"]["load_ms"] > 0  # the first request loaded it
        status = (await client.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)).json()
        assert status["runtime_status"] == "loaded"

        twelve = {"max_tokens": 12, **GREEDY}
        frames = await sse_frames(client, ADMIN, **{**body, "parameters": twelve})
        assert frames[0]["event"] == "model_selected"
        pieces = deltas(frames)
        assert len(pieces) >= 6  # token by token, never one chunk
        complete = frames[-2]
        assert complete["event"] == "complete"
        assert complete["usage"]["completion_tokens"] == 12
        assert complete["timings"]["load_ms"] == 0  # already loaded
        assert frames[-1] == "[DONE]"

        loaded = (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
        assert [(m["model_id"], m["runtime"], m["in_flight"]) for m in loaded] == [
            (GEMMA, "llama_cpp", 0)
        ]
        assert loaded[0]["memory_bytes"] > 200_000_000

        bad = await generate(client, ADMIN, **{**body, "parameters": {"max_tokens": 0}})
        assert_envelope(bad, 422, "validation_error")
        image = await generate(client, ADMIN, model=GEMMA, modality="image", input=PROMPT)
        assert_envelope(image, 400, "invalid_parameter")

        metrics = (await client.get("/metrics", headers=ADMIN)).text
        assert "pluggably_models_loaded 1.0" in metrics
        assert 'pluggably_model_events_total{event="load"} 1.0' in metrics
        assert f'pluggably_local_tokens_per_second_count{{model="{GEMMA}"}} 2.0' in metrics

        record = await client.get(f"/v1/requests/{answer['request_id']}", headers=ADMIN)
        assert record.json()["status"] == "completed"
        assert record.json()["model"] == f"local:{GEMMA}"


async def test_lifecycle_routes(tmp_path: Path, database_url: str, gemma_gguf: Path) -> None:
    app = local_app(tmp_path, database_url, gemma_gguf, "gemma", "other", max_loaded_models=1)
    async with running(app), client_for(app, timeout=60) as client:
        user = await _user(client)
        denied = await client.post(f"/v1/models/{GEMMA}/load", headers=user)
        assert_envelope(denied, 403, "forbidden")
        missing = await client.post("/v1/models/local/nope/load", headers=ADMIN)
        assert_envelope(missing, 404, "model_not_found")

        loading = await client.post(f"/v1/models/{GEMMA}/load", headers=ADMIN)
        assert loading.status_code == 202
        assert loading.json() == {"model_id": GEMMA, "status": "loading"}

        async def loaded() -> bool:
            status = await client.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)
            return bool(status.json()["runtime_status"] == "loaded")

        await wait_for(loaded)
        again = await client.post(f"/v1/models/{GEMMA}/load", json={"wait": True}, headers=ADMIN)
        assert (again.status_code, again.json()["status"]) == (200, "loaded")

        # The limit is one model: loading another evicts the idle, unpinned one.
        other = await client.post("/v1/models/local/other/load", json={"wait": True}, headers=ADMIN)
        assert other.status_code == 200
        ids = [
            m["model_id"]
            for m in (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
        ]
        assert ids == ["local/other"]

        # A pinned model (the default of its modality) is never unloaded without force.
        await client.post("/v1/models/local/other/default", headers=ADMIN)
        pinned = await client.post("/v1/models/local/other/unload", headers=ADMIN)
        assert_envelope(pinned, 409, "conflict")
        listed = (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
        assert listed[0]["pinned"] is True
        assert listed[0]["expires_at"] is None
        # Nothing can be evicted for gemma now: 503 model_loading.
        blocked = await client.post(f"/v1/models/{GEMMA}/load", headers=ADMIN)
        assert_envelope(blocked, 503, "model_loading")
        forced = await client.post(
            "/v1/models/local/other/unload", params={"force": "true"}, headers=ADMIN
        )
        assert forced.json() == {"model_id": "local/other", "status": "unloaded"}
        assert (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"] == []

        features = (await client.get("/v1/features", headers=user)).json()
        assert features["runtimes"]["llama_cpp"] is True
        assert features["local_models_enabled"] is True


SHORT = {"model": GEMMA, "input": PROMPT, "parameters": {"max_tokens": 4, **GREEDY}}


@dataclass
class BusyGemma:
    """Gemma busy with one long request (the only slot) and two short ones queued behind it."""

    client: httpx.AsyncClient
    holder: asyncio.Future[httpx.Response]  # the long request, waited for
    first: httpx.Response  # the first waiter's answer
    second: dict[str, Any]  # the second waiter's answer

    @property
    def queued(self) -> dict[str, Any]:
        return dict(self.first.json())

    async def cancel(self, request_id: str) -> dict[str, Any]:
        return dict(
            (await self.client.post(f"/v1/requests/{request_id}/cancel", headers=ADMIN)).json()
        )

    async def cancel_the_running_one(self) -> dict[str, Any]:
        return await self.cancel(await _running_request(self.client))


async def _gemma_status(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)).json())


@pytest.fixture
async def busy(tmp_path: Path, database_url: str, gemma_gguf: Path) -> AsyncIterator[BusyGemma]:
    # One user fills the whole queue here: their share is all of it.
    app = local_app(tmp_path, database_url, gemma_gguf, max_queue_depth=2, max_queue_per_user=2)
    async with running(app), client_for(app, timeout=60) as client:
        long_body = {
            "model": GEMMA,
            "input": {"prompt": LONG_RUNNING},
            "parameters": {"max_tokens": 2000, **GREEDY},
        }
        holder = asyncio.ensure_future(generate(client, ADMIN, **long_body, wait=True))

        async def is_busy() -> bool:
            return bool((await _gemma_status(client))["runtime_status"] == "busy")

        await wait_for(is_busy, 30)
        first = await generate(client, ADMIN, **SHORT)
        gemma = BusyGemma(client, holder, first, (await generate(client, ADMIN, **SHORT)).json())
        yield gemma
        if not holder.done():  # 2,000 tokens would outlast the test by far
            await gemma.cancel_the_running_one()
        await holder


async def test_a_busy_model_answers_202_with_queue_positions_and_503_when_full(
    busy: BusyGemma,
) -> None:
    first, queued = busy.first, busy.queued
    assert first.status_code == 202, first.text
    assert queued["status"] == "queued"
    assert queued["queue_position"] == 1
    assert first.headers["location"] == f"/v1/requests/{queued['request_id']}"
    assert busy.second["queue_position"] == 2
    full = await generate(busy.client, ADMIN, **SHORT)
    assert_envelope(full, 503, "queue_full")
    assert full.headers["retry-after"]

    status = await busy.client.get(queued["status_url"], headers=ADMIN)
    assert (status.json()["status"], status.json()["queue_position"]) == ("queued", 1)
    model = (await busy.client.get(f"/v1/models/{GEMMA}", headers=ADMIN)).json()
    assert (model["runtime_status"], model["queue_depth"]) == ("busy", 2)


async def test_cancelling_a_waiter_moves_the_next_one_up(busy: BusyGemma) -> None:
    cancelled = await busy.cancel(busy.queued["request_id"])
    assert cancelled["cancelled"] is True
    status = await busy.client.get(busy.second["status_url"], headers=ADMIN)
    assert status.status_code == 200, (status.text, busy.second)
    assert (status.json()["status"], status.json()["queue_position"]) == ("queued", 1)
    gone = await busy.client.get(busy.queued["result_url"], headers=ADMIN)
    assert gone.json()["status"] == "cancelled"


async def test_cancelling_the_running_request_returns_its_text_and_the_queue_runs_on(
    busy: BusyGemma,
) -> None:
    """The first waiter cancelled, a stream joins behind the second: cancelling the running
    request gives its partial text back, the slot frees and the waiters run in turn."""
    client, second = busy.client, busy.second
    events = asyncio.ensure_future(_events(client, second["request_id"]))
    await busy.cancel(busy.queued["request_id"])
    # A stream joins the queue behind it: queued frames at each position, then tokens.
    streamed = asyncio.ensure_future(sse_frames(client, ADMIN, **SHORT))

    async def two_waiting() -> bool:
        return bool((await _gemma_status(client))["queue_depth"] == 2)

    await wait_for(two_waiting)
    stopped = await busy.cancel_the_running_one()
    assert stopped["cancelled"] is True
    held = (await busy.holder).json()
    assert held["finish_reason"] == "cancelled"
    assert (held["output"]["text"] or "") == stopped["partial_output"]["text"]

    async def served() -> bool:
        record = await client.get(second["result_url"], headers=ADMIN)
        return bool(record.json()["status"] == "completed")

    await wait_for(served, 30)
    record = (await client.get(second["result_url"], headers=ADMIN)).json()
    result = record["result"]
    assert result is not None, record
    assert result["usage"], result
    assert result["usage"]["completion_tokens"] == 4
    watched = await events  # the 202'd request, followed from its queue to its end
    assert watched[0] == {"event": "status", "request_id": second["request_id"], "status": "queued"}
    assert [f["queue_position"] for f in watched if f.get("event") == "queued"] == [1]
    assert watched[-1]["status"] == "completed"
    frames = await streamed
    names = [f.get("event") if isinstance(f, dict) else f for f in frames]
    assert frames[0]["event"] == "queued"
    positions = [f["queue_position"] for f in frames[:-1] if f.get("event") == "queued"]
    assert positions == [2, 1]
    assert names[2] == "model_selected"
    assert names[-2:] == ["complete", "[DONE]"]
    assert frames[-2]["usage"]["completion_tokens"] >= 1


async def test_while_loading_fallback_answers_from_the_default(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    app = local_app(tmp_path, database_url, gemma_gguf, "gemma", "other")
    async with running(app), client_for(app, timeout=60) as client:
        await client.post(f"/v1/models/{GEMMA}/default", headers=ADMIN)
        await client.post(f"/v1/models/{GEMMA}/load", json={"wait": True}, headers=ADMIN)
        body = {"model": "local/other", "input": PROMPT, "parameters": {"max_tokens": 3}}
        answer = (await generate(client, ADMIN, **body, while_loading="fallback")).json()
        assert answer["model"] == f"local:{GEMMA}"
        assert answer["selection"]["fallback_used"] is True
        assert "local:local/other is loading" in answer["selection"]["fallback_reason"]

        async def other_loaded() -> bool:
            status = await client.get("/v1/models/local/other/status", headers=ADMIN)
            return bool(status.json()["runtime_status"] == "loaded")

        await wait_for(other_loaded, 30)  # it loaded in the background meanwhile
        direct = (await generate(client, ADMIN, **body, while_loading="fallback")).json()
        assert direct["model"] == "local/other"
        assert direct["selection"]["fallback_used"] is False

        # Omitted model: the default of the modality answers.
        auto = (await generate(client, ADMIN, input=PROMPT, parameters={"max_tokens": 2})).json()
        assert auto["model"] == f"local:{GEMMA}"


async def _events(client: httpx.AsyncClient, request_id: str) -> list[Any]:
    response = await client.get(f"/v1/requests/{request_id}/events", headers=ADMIN)
    assert response.status_code == 200
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]


async def _running_request(client: httpx.AsyncClient) -> str:
    """The id of the admin's request that is running now (from the records)."""
    container = client._transport.app.state.container  # type: ignore[attr-defined]
    for live in list(container.generation.live._live.values()):
        if live.status == "running":
            return str(live.request_id)
    raise AssertionError("no running request")


async def _user(client: httpx.AsyncClient) -> dict[str, str]:
    from tests.conftest import new_user

    return await new_user(client, "localuser")


def test_client_hanging_up_stops_the_local_generation(
    tmp_path: Path, free_port: int, gemma_gguf: Path
) -> None:
    """Through a real server process: a client that goes away mid-stream stops llama.cpp
    at once (the model is idle again long before 4,000 tokens could be generated), the
    record says cancelled with the partial text, and the next request gets the slot."""
    import time

    from tests.serving.test_serve import start_server, stop_server

    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    os.link(gemma_gguf, models / "gemma.gguf")
    base = f"http://127.0.0.1:{free_port}"
    proc, log_path = start_server(tmp_path, free_port)
    try:
        body = {
            "model": "local/gemma",
            "input": {"prompt": LONG_RUNNING},
            "parameters": {"max_tokens": 4000, **GREEDY},
            "stream": True,
        }
        request_id, pieces = None, 0
        with httpx.Client(base_url=base, timeout=30) as client:
            with client.stream("POST", "/v1/generate", json=body, headers=ADMIN) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and "model_selected" in line:
                        request_id = json.loads(line.removeprefix("data: "))["request_id"]
                    if line.startswith("data: ") and "choices" in line:
                        pieces += 1
                        if pieces == 3:
                            break  # a few tokens seen: hang up
            hung_up = time.monotonic()
            status: dict[str, Any] = {}
            while time.monotonic() - hung_up < 5:
                status = client.get("/v1/models/local/gemma/status", headers=ADMIN).json()
                if status["runtime_status"] != "busy":
                    break
                time.sleep(0.02)
            assert status["runtime_status"] == "loaded", status
            assert time.monotonic() - hung_up < 2  # 4,000 tokens take ~90 s here
            record: dict[str, Any] = {}
            for _ in range(100):
                record = client.get(f"/v1/requests/{request_id}", headers=ADMIN).json()
                if record["status"] != "running":
                    break
                time.sleep(0.02)
            assert record["status"] == "cancelled", record
            assert record["result"]["finish_reason"] == "cancelled"
            assert record["result"]["output"]["text"]  # the tokens sent before the hang-up
            short = {"model": "local/gemma", "input": {"prompt": "Hi"}, "wait": True}
            short["parameters"] = {"max_tokens": 4}
            answer = client.post("/v1/generate", json=short, headers=ADMIN)
            assert answer.status_code == 200, answer.text
    finally:
        stop_server(proc, log_path)
