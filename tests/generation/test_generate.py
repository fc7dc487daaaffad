"""POST /v1/generate through the OpenAI-compatible adapter against the OpenAI
simulator: JSON and SSE, image input, parameters, every error class, fallbacks,
request records."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
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
    generate,
    make_settings,
    new_user,
    running,
    sse_frames,
    unused_port,
)
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import OpenAISim, make_png

ADMIN = {"X-API-Key": ADMIN_KEY}
PNG = base64.b64encode(make_png(8, 8, "x")).decode()


def app_with_backup(
    tmp_path: Path, database_url: str, sim: OpenAISim, backup: OpenAISim
) -> FastAPI:
    """The simulator as openai, a second one as the operator endpoint 'backup', and
    backup:gpt-4o-mini as the fallback of openai:gpt-4o-mini."""
    return gen_app(
        tmp_path,
        database_url,
        sim,
        endpoints={"backup": {"base_url": backup.base_url, "api_key": "sk-backup-0001"}},
        fallbacks={"openai:gpt-4o-mini": ["backup:gpt-4o-mini"]},
    )


def serve_with(tmp_path: Path, port: int, sim: OpenAISim) -> tuple[Any, Path]:
    """A real `pluggably serve` process with the simulator as openai (server key for admins)."""
    from tests.serving.test_serve import start_server

    return start_server(
        tmp_path,
        port,
        PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=sim.base_url,
        PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
        PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
    )


def gen_app(tmp_path: Path, database_url: str, sim: OpenAISim, **extra: Any) -> FastAPI:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": sim.base_url, "api_key": "sk-server-key-0001"}},
        server_keys_allowed=["@admins"],
        **extra,
    )
    return create_app(settings)


async def test_json_text_with_usage_and_record(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "hello there"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["text"] == "Echo: hello there"
        assert (body["model"], body["provider"], body["modality"]) == (
            "openai:gpt-4o-mini",
            "openai",
            "text",
        )
        assert body["finish_reason"] == "stop"
        usage = body["usage"]
        assert usage["completion_tokens"] == 3
        assert usage["total_tokens"] == usage["prompt_tokens"] + 3
        assert body["selection"] == {
            "selected_model": "openai:gpt-4o-mini",
            "selected_provider": "openai",
            "fallback_used": False,
            "fallback_reason": None,
            "attempts": [
                {
                    "model": "openai:gpt-4o-mini",
                    "provider": "openai",
                    "error_code": None,
                    "reason": None,
                }
            ],
        }
        sent = openai_sim.requests_to("/v1/chat/completions")[-1]
        assert sent.headers["authorization"] == "Bearer sk-server-key-0001"
        record = (await client.get(f"/v1/requests/{body['request_id']}", headers=ADMIN)).json()
        assert record["status"] == "completed"
        assert record["result"]["output"]["text"] == "Echo: hello there"
        status = (
            await client.get(f"/v1/requests/{body['request_id']}/status", headers=ADMIN)
        ).json()
        assert status["status"] == "completed"
        # A bare vendor model name finds its vendor.
        bare = await generate(
            client, ADMIN, model="gpt-4o", input={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert bare.json()["model"] == "gpt-4o"  # as asked; the selection names the target
        assert bare.json()["selection"]["selected_model"] == "openai:gpt-4o"


async def test_a_cancel_once_the_answer_is_in_leaves_it_completed(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The upstream has answered and the gateway is writing the answer out (files, turn,
    record): a cancel then comes too late and must not turn the answer into 'cancelled'."""
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        generation = app.state.container.generation
        writing, release = asyncio.Event(), asyncio.Event()
        output = generation.outcomes.output

        async def held(plan: Any, completion: Any) -> Any:
            writing.set()
            await release.wait()
            return await output(plan, completion)

        generation.outcomes.output = held
        call = asyncio.create_task(
            generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "hello there"})
        )
        await asyncio.wait_for(writing.wait(), 10)
        [live] = generation.live.all()
        cancel = await client.post(f"/v1/requests/{live.request_id}/cancel", headers=ADMIN)
        assert cancel.status_code == 200
        release.set()
        response = await asyncio.wait_for(call, 10)

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["finish_reason"], body["output"]["text"]) == ("stop", "Echo: hello there")
        record = (await client.get(f"/v1/requests/{body['request_id']}", headers=ADMIN)).json()
        assert record["status"] == "completed"


async def test_users_own_key_system_prompt_and_parameters(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await new_user(client, "writer")
        missing = await generate(client, user, model="openai:gpt-4o-mini", input={"prompt": "x"})
        detail = assert_envelope(missing, 400, "provider_not_configured")
        assert "provider-keys" in detail["message"]
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-users-own-key-77"},
            headers=user,
        )
        response = await generate(
            client,
            user,
            model="openai:gpt-4o-mini",
            system_prompt="Be brief.",
            input={"prompt": "one two three four five"},
            parameters={"max_tokens": 2, "temperature": 0.2, "stop": ["\n"], "seed": 7},
        )
        body = response.json()
        assert body["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 2
        sent = openai_sim.requests_to("/v1/chat/completions")[-1]
        assert sent.headers["authorization"] == "Bearer sk-users-own-key-77"
        assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["seed"]) == (2, 0.2, 7)
        bad = await generate(
            client,
            user,
            model="openai:gpt-4o-mini",
            input={"prompt": "x"},
            parameters={"temperature": 5, "wat": 1},
        )
        detail = assert_envelope(bad, 422, "validation_error")
        locs = {tuple(d["loc"]) for d in detail["details"]}
        assert locs == {("body", "parameters", "temperature"), ("body", "parameters", "wat")}


async def test_streaming_frames(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> None:
    openai_sim.set_reply("gpt-4o-mini", "one two three four five")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        frames = await sse_frames(
            client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "count"}
        )
        assert frames[0]["event"] == "model_selected"
        assert frames[0]["model"] == "openai:gpt-4o-mini"
        deltas = [
            f["choices"][0]["delta"]["content"]
            for f in frames
            if isinstance(f, dict) and "choices" in f
        ]
        assert len(deltas) == 5
        assert "".join(deltas) == "one two three four five"
        complete = frames[-2]
        assert complete["event"] == "complete"
        assert complete["usage"]["completion_tokens"] == 5
        assert "text" not in complete["output"]
        assert complete["timings"]["first_token_ms"] > 0
        assert frames[-1] == "[DONE]"
        record = (await client.get(f"/v1/requests/{complete['request_id']}", headers=ADMIN)).json()
        assert record["result"]["output"]["text"] == "one two three four five"  # stored in full


async def test_image_input_and_image_generation(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        vision = await generate(
            client,
            ADMIN,
            model="openai:gpt-4o",
            input={"prompt": "what is this", "images": [PNG, f"data:image/png;base64,{PNG}"]},
        )
        assert vision.json()["output"]["text"].endswith("[2 images]")
        parts = openai_sim.requests_to("/v1/chat/completions")[-1].body["messages"][-1]["content"]
        assert parts[1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }
        broken = await generate(
            client, ADMIN, model="openai:gpt-4o", input={"prompt": "x", "images": ["!!!"]}
        )
        assert_envelope(broken, 400, "invalid_parameter")
        picture = await generate(
            client,
            ADMIN,
            model="openai:dall-e-2",
            modality="image",
            input={"prompt": "a red square"},
            parameters={"width": 256, "height": 256},
        )
        assert picture.status_code == 200, picture.text
        image = base64.b64decode(picture.json()["output"]["images"][0])
        assert image.startswith(b"\x89PNG")
        assert openai_sim.requests_to("/v1/images/generations")[-1].body["size"] == "256x256"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (lambda sim: sim.fail_next(status=429, retry_after=7), 429, "rate_limited"),
        (lambda sim: sim.fail_next(status=500), 503, "backend_unavailable"),
        (lambda sim: sim.fail_next(status=503), 503, "backend_unavailable"),
        (lambda sim: sim.fail_next(status=404), 404, "model_not_found"),
        (lambda sim: setattr(sim, "valid_keys", {"sk-other"}), 502, "upstream_error"),
        (lambda sim: sim.garbage_next(), 503, "backend_unavailable"),
        (lambda sim: setattr(sim, "down", True), 503, "backend_unavailable"),
        (lambda sim: setattr(sim, "delay_s", 2.0), 504, "timeout"),
    ],
    ids=["429", "500", "503", "404", "bad-key", "garbage", "down", "hung"],
)
async def test_upstream_errors_map_to_codes(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    fault: Callable[[OpenAISim], None],
    status: int,
    code: str,
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim, upstream_timeout_s=0.5)
    async with running(app), client_for(app) as client:
        fault(openai_sim)
        response = await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        detail = assert_envelope(response, status, code)
        assert "openai (gpt-4o-mini)" in detail["message"]
        if code == "rate_limited":
            assert response.headers["retry-after"] == "7"
        if code == "upstream_error":
            assert "credential" in detail["message"]
        openai_sim.reset_faults()
        openai_sim.valid_keys = None
        frames = await sse_frames(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        assert frames[-2]["event"] == "complete"  # and streams work again afterwards


async def test_fallback_after_429_and_dead_upstream(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    backup.set_reply("gpt-4o-mini", "from the backup")
    app = app_with_backup(tmp_path, database_url, openai_sim, backup)
    async with running(app), client_for(app) as client:
        openai_sim.fail_next(status=429)
        body = (
            await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        ).json()
        assert "output" in body, body
        assert body["output"]["text"] == "from the backup"
        selection = body["selection"]
        assert (selection["selected_provider"], selection["fallback_used"]) == ("backup", True)
        assert [a["error_code"] for a in selection["attempts"]] == ["rate_limited", None]
        assert selection["fallback_reason"] == "openai failed with rate_limited"
        openai_sim.down = True
        frames = await sse_frames(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        assert frames[0]["provider"] == "backup"
        assert frames[0]["fallback_used"] is True
        assert frames[-2]["event"] == "complete"
        # Not retryable: a bad request does not fall back.
        openai_sim.down = False
        openai_sim.fail_next(status=400)
        response = await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        assert_envelope(response, 400, "invalid_parameter")
        # The chain exhausted: the last error answers.
        openai_sim.down = backup.down = True
        response = await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        assert_envelope(response, 503, "backend_unavailable")


async def test_stream_broken_after_first_token_is_an_error_frame(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "a b c d e f")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        openai_sim.break_stream_after(2)
        frames = await sse_frames(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        deltas = [f for f in frames if isinstance(f, dict) and "choices" in f]
        assert len(deltas) == 2
        assert frames[-2]["event"] == "error"
        assert frames[-2]["code"] == "backend_unavailable"
        assert frames[-1] == "[DONE]"
        request_id = frames[0]["request_id"]
        record = (await client.get(f"/v1/requests/{request_id}/status", headers=ADMIN)).json()
        assert record["status"] == "failed"


async def test_routing_errors_and_request_privacy(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        for model, status, code in [
            ("nope:thing", 400, "unsupported_provider"),
            ("mystery-model", 404, "model_not_found"),
        ]:
            response = await generate(client, ADMIN, model=model, input={"prompt": "x"})
            assert_envelope(response, status, code)
        assert_envelope(
            await generate(client, ADMIN, selection_mode="model", input={"prompt": "x"}),
            400,
            "model_required",
        )
        assert_envelope(
            await generate(client, ADMIN, model="gpt-4o", input={}), 400, "invalid_parameter"
        )
        # Auto selection finds the provider the caller can use.
        auto = await generate(client, ADMIN, input={"prompt": "hello"})
        assert auto.json()["model"] == "openai:gpt-4o-mini"
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-alice-000001"},
            headers=alice,
        )
        request_id = (
            await generate(client, alice, model="gpt-4o-mini", input={"prompt": "hi"})
        ).json()["request_id"]
        for path in (f"/v1/requests/{request_id}", f"/v1/requests/{request_id}/status"):
            assert_envelope(await client.get(path, headers=bob), 404, "request_not_found")
            assert (await client.get(path, headers=alice)).status_code == 200
        providers = {
            p["name"]: p
            for p in (await client.get("/v1/providers", headers=alice)).json()["providers"]
        }
        assert providers["openai"]["configured"] is True
        assert providers["groq"]["configured"] is False
        assert providers["openai"]["supported_modalities"] == ["image", "text"]
        assert providers["openai"]["embeddings"] is True


@pytest.mark.slow
def test_client_disconnect_cancels_the_upstream_call(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    """Through a real server process: a client that goes away mid-stream closes the
    upstream stream at once, and the request record says cancelled."""
    from tests.serving.test_serve import stop_server

    openai_sim.set_reply("gpt-4o-mini", " ".join(f"w{i}" for i in range(200)))
    openai_sim.token_delay_s = 0.05
    proc, log_path = serve_with(tmp_path, free_port, openai_sim)
    base = f"http://127.0.0.1:{free_port}"
    try:
        body = {"model": "openai:gpt-4o-mini", "input": {"prompt": "go"}, "stream": True}
        request_id = None
        with httpx.Client(base_url=base, timeout=10) as client:
            with client.stream("POST", "/v1/generate", json=body, headers=ADMIN) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and "model_selected" in line:
                        request_id = json.loads(line.removeprefix("data: "))["request_id"]
                    if line.startswith("data: ") and "choices" in line:
                        break  # first token seen: hang up
            started = time.monotonic()
            assert openai_sim.wait_for(lambda s: s.disconnects == 1 and s.active_streams == 0, 3)
            assert time.monotonic() - started < 1.5
            status = None
            for _ in range(50):
                status = client.get(f"/v1/requests/{request_id}/status", headers=ADMIN).json()
                if status["status"] != "running":
                    break
                time.sleep(0.05)
            assert status is not None
            assert status["status"] == "cancelled"
    finally:
        stop_server(proc, log_path)


async def test_dead_upstream_cools_down(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    app = app_with_backup(tmp_path, database_url, openai_sim, backup)
    async with running(app), client_for(app) as client:
        openai_sim.fail_next(n=3, status=503)
        for _ in range(3):
            body = (
                await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
            ).json()
            assert body["selection"]["selected_provider"] == "backup"
        before = len(openai_sim.requests_to("/v1/chat/completions"))
        body = (
            await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        ).json()
        # Three failures in a row: openai sits out; the backup answers without a wasted call.
        assert body["selection"]["attempts"] == [
            {
                "model": "backup:gpt-4o-mini",
                "provider": "backup",
                "error_code": None,
                "reason": None,
            }
        ]
        assert len(openai_sim.requests_to("/v1/chat/completions")) == before


@dataclass
class _CancelledStream:
    """A stream cancelled through POST /v1/requests/{id}/cancel while GET …/events followed
    it: the cancel's answer, the stream's and the watcher's ``data:`` payloads."""

    sim: OpenAISim
    base: str
    stream_frames: list[str] = field(default_factory=list)
    watched: list[str] = field(default_factory=list)
    request_id: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    def consume(self) -> None:
        body = {"model": "openai:gpt-4o-mini", "input": {"prompt": "go"}, "stream": True}
        with (
            httpx.Client(base_url=self.base, timeout=20) as c,
            c.stream("POST", "/v1/generate", json=body, headers=ADMIN) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.stream_frames.append(line.removeprefix("data: "))
                    if "model_selected" in line:
                        self.request_id.append(
                            json.loads(line.removeprefix("data: "))["request_id"]
                        )

    def watch(self) -> None:
        path = f"/v1/requests/{self.request_id[0]}/events"
        with (
            httpx.Client(base_url=self.base, timeout=20) as c,
            c.stream("GET", path, headers=ADMIN) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.watched.append(line.removeprefix("data: "))

    def cancel_after_five_tokens(self) -> None:
        consumer = threading.Thread(target=self.consume)
        consumer.start()
        while len([f for f in self.stream_frames if "choices" in f]) < 5:
            time.sleep(0.01)
        watcher = threading.Thread(target=self.watch)
        watcher.start()
        time.sleep(0.3)
        with httpx.Client(base_url=self.base, timeout=10) as c:
            self.result = c.post(f"/v1/requests/{self.request_id[0]}/cancel", headers=ADMIN).json()
        consumer.join(5)
        watcher.join(5)


@pytest.fixture(scope="class")  # one stream for the class below; stopped after it
def cancelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_CancelledStream]:
    from tests.serving.test_serve import stop_server

    with serving(OpenAISim(), "the OpenAI simulator") as sim:
        sim.set_reply("gpt-4o-mini", " ".join(f"w{i}" for i in range(200)))
        sim.token_delay_s = 0.03
        port = unused_port()
        proc, log_path = serve_with(tmp_path_factory.mktemp("cancel"), port, sim)
        try:
            run = _CancelledStream(sim, f"http://127.0.0.1:{port}")
            run.cancel_after_five_tokens()
            yield run
        finally:
            stop_server(proc, log_path)


@pytest.mark.slow
class TestCancellingARunningStream:
    """POST /v1/requests/{id}/cancel stops a running stream (partial text back, the
    upstream closed) while GET …/events follows it; through a real server process, one
    stream for the class (each test checks one thing the cancel did)."""

    def test_the_cancel_answers_with_the_partial_text(self, cancelled: _CancelledStream) -> None:
        assert cancelled.result["cancelled"] is True
        assert cancelled.result["status"] == "cancelled"
        assert cancelled.result["partial_output"]["text"].startswith("w0 w1 w2 w3 w4")

    def test_the_stream_ends_with_a_cancelled_error(self, cancelled: _CancelledStream) -> None:
        assert json.loads(cancelled.stream_frames[-2]) == {
            "event": "error",
            "code": "cancelled",
            "message": "The request was cancelled.",
        }
        assert cancelled.stream_frames[-1] == "[DONE]"

    def test_the_events_follow_the_stream_to_its_cancel(self, cancelled: _CancelledStream) -> None:
        watched = cancelled.watched
        assert json.loads(watched[0])["event"] == "status"
        assert json.loads(watched[-2]) == {
            "event": "status",
            "request_id": cancelled.request_id[0],
            "status": "cancelled",
        }
        assert any("choices" in frame for frame in watched[1:-2])

    def test_the_upstream_stream_is_closed(self, cancelled: _CancelledStream) -> None:
        assert cancelled.sim.wait_for(lambda s: s.active_streams == 0, 2)

    def test_the_record_says_cancelled_and_a_second_cancel_is_a_no_op(
        self, cancelled: _CancelledStream
    ) -> None:
        rid = cancelled.request_id[0]
        with httpx.Client(base_url=cancelled.base, timeout=10) as c:
            status = c.get(f"/v1/requests/{rid}", headers=ADMIN).json()
            assert status["status"] == "cancelled"
            again = c.post(f"/v1/requests/{rid}/cancel", headers=ADMIN).json()
            assert (again["cancelled"], again["status"]) == (False, "cancelled")


async def test_requests_running_at_a_crash_are_marked_interrupted(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    from pluggably.generation.models import RequestRecord

    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), app.state.container.db.session() as session:
        session.add(
            RequestRecord(
                id="req_crashed",
                user_id=app.state.container.admin_user_id,
                modality="text",
                status="running",
            )
        )
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        status = (await client.get("/v1/requests/req_crashed/status", headers=ADMIN)).json()
        assert status["status"] == "failed"
        assert status["error"]["code"] == "interrupted"


def homelab_app(tmp_path: Path, database_url: str, sim: OpenAISim, free: OpenAISim) -> FastAPI:
    """The simulator as openai, and ``free`` (serving tiny-free) as the endpoint 'homelab'."""
    return gen_app(
        tmp_path,
        database_url,
        sim,
        endpoints={
            "homelab": {"base_url": free.base_url, "api_key": "sk-h-0001", "models": ["tiny-free"]}
        },
    )


async def _providers(client: httpx.AsyncClient, user: dict[str, str]) -> dict[str, Any]:
    """GET /v1/providers as ``user``, by provider name."""
    listed = (await client.get("/v1/providers", headers=user)).json()["providers"]
    return {p["name"]: p for p in listed}


@pytest.fixture
async def spender(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client of the homelab app and the headers of a user with their own openai key."""
    free = make_openai_sim(models=["tiny-free"])
    free.set_reply("tiny-free", "free answer")
    app = homelab_app(tmp_path, database_url, openai_sim, free)
    async with running(app), client_for(app) as client:
        user = await new_user(client, "spender")
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-spender-0001"},
            headers=user,
        )
        yield client, user


async def test_providers_list_the_models_each_discovered(
    spender: tuple[httpx.AsyncClient, dict[str, str]], openai_sim: OpenAISim
) -> None:
    listed = await _providers(*spender)
    assert listed["openai"]["models_discovered"] == sorted(openai_sim.models)
    assert listed["openai"]["credits_status"] == {"provider": "openai", "status": "unknown"}
    assert listed["homelab"]["models_discovered"] == ["tiny-free"]
    assert listed["groq"]["models_discovered"] is None  # not configured: not asked


async def test_discovery_is_cached_until_a_new_key(
    spender: tuple[httpx.AsyncClient, dict[str, str]], openai_sim: OpenAISim
) -> None:
    client, user = spender
    await _providers(client, user)
    calls = len(openai_sim.requests_to("/v1/models"))
    await client.get("/v1/providers", headers=user)
    assert len(openai_sim.requests_to("/v1/models")) == calls  # cached
    await client.post(
        "/v1/users/provider-keys",
        json={"provider": "openai", "api_key": "sk-spender-0002"},
        headers=user,
    )
    await client.get("/v1/providers", headers=user)
    assert len(openai_sim.requests_to("/v1/models")) == calls + 1  # a new key: asked again


async def test_an_exhausted_quota_falls_back_and_says_exhausted(
    spender: tuple[httpx.AsyncClient, dict[str, str]], openai_sim: OpenAISim
) -> None:
    client, user = spender
    quota = {
        "error": {
            "message": "You exceeded your current quota, please check your plan.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    openai_sim.fail_next(status=429, body=quota)
    body = (await generate(client, user, provider="openai", input={"prompt": "hi"})).json()
    assert body["output"]["text"] == "free answer"
    assert body["selection"]["selected_provider"] == "homelab"
    assert body["selection"]["fallback_used"] is True
    assert body["credits_status"] == {
        "provider": "openai",
        "status": "exhausted",
        "remaining": None,
        "reset_at": None,
    }
    listed = await _providers(client, user)
    assert listed["openai"]["credits_status"]["status"] == "exhausted"


async def test_upstream_messages_never_carry_the_key(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        echo = {
            "error": {"message": "Incorrect API key provided: sk-server-key-0001.", "type": "x"}
        }
        openai_sim.fail_next(status=401, body=echo)
        response = await generate(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        detail = assert_envelope(response, 502, "upstream_error")
        assert "sk-server-key-0001" not in response.text
        assert "[redacted]" in detail["message"]
        openai_sim.fail_next(status=401, body=echo)
        frames = await sse_frames(client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "x"})
        assert "sk-server-key-0001" not in json.dumps(frames)
        record = await client.get(f"/v1/requests/{frames[-2].get('request_id', '')}", headers=ADMIN)
        assert "sk-server-key-0001" not in record.text


async def test_stream_setup_errors_are_plain_http_errors(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        for body, status, code in [
            ({"model": "nope:x"}, 400, "unsupported_provider"),
            (
                {"model": "openai:gpt-4o-mini", "parameters": {"temperature": 9}},
                422,
                "validation_error",
            ),
        ]:
            response = await client.post(
                "/v1/generate",
                json={**body, "input": {"prompt": "x"}, "stream": True},
                headers=ADMIN,
            )
            assert_envelope(response, status, code)


class _BrokenAdapter:
    """A provider whose answers this gateway cannot read (an adapter bug, or a vendor
    changing its format): raises something that is not a GatewayError."""

    name = "broken"
    modalities = frozenset({"text"})
    max_stops = None

    async def complete(self, call: Any, credential: Any) -> Any:
        raise KeyError("choices")

    async def stream(self, call: Any, credential: Any) -> Any:
        from pluggably.providers.base import Delta

        yield Delta("half ")
        raise TypeError("unexpected frame")

    async def list_models(self, credential: Any) -> list[str]:
        return []


async def test_unreadable_answers_end_cleanly(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(
        tmp_path, database_url, openai_sim, endpoints={"broken": {"base_url": "http://127.0.0.1:9"}}
    )
    async with running(app), client_for(app) as client:
        app.state.container.providers.register(_BrokenAdapter())
        response = await generate(client, ADMIN, model="broken:m", input={"prompt": "x"})
        detail = assert_envelope(response, 502, "upstream_error")
        assert "cannot read" in detail["message"]
        frames = await sse_frames(client, ADMIN, model="broken:m", input={"prompt": "x"})
        assert frames[-2]["event"] == "error"
        assert frames[-1] == "[DONE]"
        status = (
            await client.get(f"/v1/requests/{frames[0]['request_id']}/status", headers=ADMIN)
        ).json()
        assert status["status"] == "failed"


async def test_cooldown_is_per_user_for_vendors(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    app = app_with_backup(tmp_path, database_url, openai_sim, backup)
    async with running(app), client_for(app) as client:
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        for who, key in ((alice, "sk-alice-00001"), (bob, "sk-bob-000001")):
            await client.post(
                "/v1/users/provider-keys", json={"provider": "openai", "api_key": key}, headers=who
            )
        openai_sim.fail_next(n=3, status=429)
        for _ in range(3):
            await generate(client, alice, model="openai:gpt-4o-mini", input={"prompt": "x"})
        body = (
            await generate(client, bob, model="openai:gpt-4o-mini", input={"prompt": "x"})
        ).json()
        assert body["selection"]["selected_provider"] == "openai"  # Alice's trouble is not Bob's


async def test_a_named_model_decides_the_modality(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        for prompt in ("Help me draw a conclusion", "How does a wifi mesh network work?"):
            response = await generate(
                client,
                ADMIN,
                model="openai:gpt-4o-mini",
                input={"prompt": prompt},
                parameters={"temperature": 0.1},
            )
            assert response.status_code == 200, response.text
            assert response.json()["modality"] == "text"
        assert not openai_sim.requests_to("/v1/images/generations")


async def test_no_credit_left_falls_back_to_a_free_model(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    app = homelab_app(tmp_path, database_url, openai_sim, make_openai_sim(models=["tiny-free"]))
    async with running(app), client_for(app) as client:
        openai_sim.fail_next(status=402, body={"error": {"message": "Insufficient Balance"}})
        body = (await generate(client, ADMIN, provider="openai", input={"prompt": "hi"})).json()
        assert body["selection"]["selected_provider"] == "homelab"
        assert body["credits_status"]["status"] == "exhausted"


def test_azure_deployment_names_cannot_rewrite_the_path() -> None:
    from pluggably.providers.openai_compat import OpenAICompatProvider
    from pluggably.providers.upstream import Upstream

    provider = OpenAICompatProvider("azure", Upstream(timeout_s=1), None, azure=True)
    url, headers = provider._url(
        {"api_key": "k" * 10, "endpoint": "https://res.openai.azure.com"},
        "x/../../../v1/models#",
        "/chat/completions",
    )
    assert url.startswith(
        "https://res.openai.azure.com/openai/deployments/x%2F..%2F..%2F..%2Fv1%2Fmodels%23/"
    )
    assert headers == {"api-key": "k" * 10}


async def test_a_new_key_takes_effect_on_the_next_request(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await new_user(client, "rotating")
        for key in ("sk-first-key-0001", "sk-second-key-0002"):
            await client.post(
                "/v1/users/provider-keys", json={"provider": "openai", "api_key": key}, headers=user
            )
            await generate(client, user, model="openai:gpt-4o-mini", input={"prompt": "x"})
            sent = openai_sim.requests_to("/v1/chat/completions")[-1]
            assert sent.headers["authorization"] == f"Bearer {key}"
        await client.delete("/v1/users/provider-keys/openai", headers=user)
        gone = await generate(client, user, model="openai:gpt-4o-mini", input={"prompt": "x"})
        assert_envelope(gone, 400, "provider_not_configured")
