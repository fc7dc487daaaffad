"""Endpoint pools: one operator endpoint over several OpenAI-compatible servers (here
OpenAI simulators and closed ports), through the app: calls go to the least busy
server, a failing one cools down without the client seeing it, health checks take a
server out and back, and operators see it all in /v1/providers and /metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.config import load_settings
from pluggably.errors import ConfigError
from tests.conftest import (
    ADMIN_KEY,
    client_for,
    generate,
    make_settings,
    new_user,
    running,
    sse_frames,
    unused_port,
)
from tests.fixtures.openai_sim import OpenAISim

ADMIN = {"X-API-Key": ADMIN_KEY}
CHAT = "/v1/chat/completions"
KEY = "sk-pool-secret-0001"


def pool_app(tmp_path: Path, database_url: str, **endpoints: dict[str, Any]) -> FastAPI:
    """Endpoints of the model gpt-4o-mini; the pool 'gone' falls back to 'pair'."""
    settings = make_settings(
        tmp_path,
        database_url,
        endpoints={name: {"models": ["gpt-4o-mini"], **spec} for name, spec in endpoints.items()},
        fallbacks={"gone:gpt-4o-mini": ["pair:gpt-4o-mini"]},
    )
    return create_app(settings)


def served(*sims: OpenAISim) -> list[int]:
    return [len(sim.requests_to(CHAT)) for sim in sims]


async def ask(client: httpx.AsyncClient, endpoint: str) -> dict[str, Any]:
    response = await generate(client, ADMIN, model=f"{endpoint}:gpt-4o-mini", input={"prompt": "x"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stream(client: httpx.AsyncClient, endpoint: str) -> dict[str, Any]:
    """A streamed call's last event (``complete`` or ``error``)."""
    frames = await sse_frames(client, ADMIN, model=f"{endpoint}:gpt-4o-mini", input={"prompt": "x"})
    assert frames[-1] == "[DONE]"
    last: dict[str, Any] = frames[-2]
    return last


async def pool_of(client: httpx.AsyncClient, endpoint: str, headers: Any = ADMIN) -> Any:
    response = await client.get("/v1/providers?discover=false", headers=headers)
    assert response.status_code == 200, response.text
    return next(p for p in response.json()["providers"] if p["name"] == endpoint)["pool"]


async def states(client: httpx.AsyncClient, endpoint: str) -> list[str]:
    return [m["state"] for m in await pool_of(client, endpoint)]


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    text = (await client.get("/metrics", headers=ADMIN)).text
    assert KEY not in text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    assert found is not None, f"{name}{{{wanted}}} is not in /metrics"
    return float(found.group(1))


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_calls_go_to_the_least_busy_server_taking_turns_on_ties(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    a, b = make_openai_sim(), make_openai_sim()
    pool = {"base_urls": [a.base_url, b.base_url], "api_key": KEY}
    app = pool_app(tmp_path, database_url, pool=pool)
    async with running(app), client_for(app) as client:
        for _ in range(4):
            await ask(client, "pool")
        assert served(a, b) == [2, 2]
        assert a.requests_to(CHAT)[0].headers["authorization"] == f"Bearer {KEY}"

        # A slow stream holds one server: the next calls all go to the other one.
        a.token_delay_s = b.token_delay_s = 0.2
        slow = asyncio.create_task(stream(client, "pool"))

        async def one_stream() -> bool:
            return a.active_streams + b.active_streams == 1

        await until(one_stream)
        busy, idle = (a, b) if a.active_streams else (b, a)
        for _ in range(3):
            await ask(client, "pool")
        assert served(busy, idle) == [3, 5]
        members = {m["url"]: m for m in await pool_of(client, "pool")}
        assert members[busy.base_url]["in_flight"] == 1
        assert members[idle.base_url] | {"checked_at": None} == {
            "url": idle.base_url,
            "state": "up",
            "in_flight": 0,
            "failures": 0,
            "last_error": None,
            "last_error_at": None,
            "checked_at": None,
        }
        labels = {"endpoint": "pool", "url": busy.base_url}
        assert await metric(client, "pluggably_endpoint_pool_in_flight", **labels) == 1
        assert await metric(client, "pluggably_endpoint_pool_up", **labels) == 1
        assert (await slow)["event"] == "complete"
        assert await metric(client, "pluggably_endpoint_pool_in_flight", **labels) == 0


async def test_a_failing_server_cools_down_and_the_client_never_sees_it(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    a, b, c, d, doomed = (make_openai_sim() for _ in range(5))
    closed = unused_port()
    quiet = {"api_key": KEY, "health_check_interval_s": 600}  # checked once, at startup
    app = pool_app(
        tmp_path,
        database_url,
        pool={"base_urls": [doomed.base_url, a.base_url], **quiet},
        five={"base_urls": [b.base_url, c.base_url], **quiet},
        pair={"base_urls": [d.base_url, a.base_url], **quiet},
        gone={"base_urls": [f"http://u:pw@127.0.0.1:{closed}/v1/", "http://127.0.0.1:9/v1"]},
    )
    async with running(app), client_for(app) as client:

        async def checked() -> bool:
            pools = [await pool_of(client, name) for name in ("pool", "five", "pair")]
            return all(m["checked_at"] for members in pools for m in members)

        await until(checked)
        doomed.stop()  # its port is closed now: every connection is refused
        # The first call tries the closed port first, then the live server: one answer.
        body = await ask(client, "pool")
        assert (body["provider"], body["selection"]["fallback_used"]) == ("pool", False)
        for _ in range(3):  # the closed port cools down: not tried again
            await ask(client, "pool")
        assert served(doomed, a) == [0, 4]
        cooling = (await pool_of(client, "pool"))[0]
        assert (cooling["url"], cooling["state"], cooling["failures"]) == (
            doomed.base_url,
            "cooling",
            1,
        )
        assert cooling["last_error"] == "backend_unavailable"
        labels = {"endpoint": "pool", "url": doomed.base_url}
        assert await metric(client, "pluggably_endpoint_pool_failovers_total", endpoint="pool") == 1
        assert await metric(client, "pluggably_endpoint_pool_up", **labels) == 0
        assert await pool_of(client, "pool", await new_user(client, "bob")) is None  # operators'

        # A 5xx before any output: the call moves on to the other server.
        b.fail_next(status=500)
        await ask(client, "five")
        assert served(b, c) == [1, 1]
        assert await states(client, "five") == ["cooling", "up"]

        # A stream that broke after its first tokens ends in an error (nothing can take
        # its place), and the server cools down: later calls go to the other one.
        d.break_stream_after(2)
        assert (await stream(client, "pair"))["code"] == "backend_unavailable"
        for _ in range(3):
            assert (await stream(client, "pair"))["event"] == "complete"
        assert served(d) == [1]
        assert await metric(client, "pluggably_endpoint_pool_failovers_total", endpoint="pair") == 0

        # Every server failing fails the candidate: the fallback chain answers.
        body = await ask(client, "gone")
        attempts = [(t["model"], t["error_code"]) for t in body["selection"]["attempts"]]
        assert attempts == [
            ("gone:gpt-4o-mini", "backend_unavailable"),
            ("pair:gpt-4o-mini", None),
        ]
        assert [m["url"] for m in await pool_of(client, "gone")] == [
            f"http://127.0.0.1:{closed}/v1",
            "http://127.0.0.1:9/v1",
        ]
        listed = (await client.get("/v1/providers", headers=ADMIN)).text
        assert KEY not in listed
        assert "pw@" not in listed


async def test_health_checks_take_a_server_out_and_back(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    a, b = make_openai_sim(), make_openai_sim()
    a.down = True  # drops every request, health checks included
    pool = {"base_urls": [a.base_url, b.base_url], "api_key": KEY, "health_check_interval_s": 1}
    app = pool_app(tmp_path, database_url, pool=pool)
    async with running(app), client_for(app) as client:

        async def a_is(state: str) -> bool:
            return (await states(client, "pool"))[0] == state

        await until(lambda: a_is("down"))
        labels = {"endpoint": "pool", "url": a.base_url}
        assert await metric(client, "pluggably_endpoint_pool_up", **labels) == 0
        for _ in range(4):
            await ask(client, "pool")
        assert served(a, b) == [0, 4]
        assert b.requests_to("/v1/models")[0].headers["authorization"] == f"Bearer {KEY}"

        a.down = False
        await until(lambda: a_is("up"))
        assert await metric(client, "pluggably_endpoint_pool_up", **labels) == 1
        for _ in range(4):
            await ask(client, "pool")
        assert served(a, b) == [2, 6]


async def test_when_every_server_is_marked_down_calls_still_try_them(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    a, b = make_openai_sim(), make_openai_sim()
    a.down = b.down = True
    pool = {"base_urls": [a.base_url, b.base_url], "api_key": KEY, "health_check_interval_s": 600}
    app = pool_app(tmp_path, database_url, pool=pool)
    async with running(app), client_for(app) as client:

        async def both_down() -> bool:
            return await states(client, "pool") == ["down", "down"]

        await until(both_down)
        a.down = b.down = False  # back, but no check says so for 10 minutes
        for _ in range(2):
            await ask(client, "pool")
        assert served(a, b) == [1, 1]
        assert await both_down()


async def test_an_outage_cools_a_server_once_and_a_streamed_answer_ends_it(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    a, b = make_openai_sim(), make_openai_sim()
    pool = {"base_urls": [a.base_url, b.base_url], "api_key": KEY, "health_check_interval_s": 600}
    app = pool_app(tmp_path, database_url, pool=pool)
    async with running(app), client_for(app) as client:

        async def checked() -> bool:
            return all(m["checked_at"] for m in await pool_of(client, "pool"))

        await until(checked)
        # Both servers fail, slowly: calls are under way on each when it starts cooling.
        for sim in (a, b):
            sim.delay_s = 0.3
            sim.fail_next(4, status=500)
        body = {"model": "pool:gpt-4o-mini", "input": {"prompt": "x"}}
        answers = await asyncio.gather(*(generate(client, ADMIN, **body) for _ in range(4)))
        assert [r.status_code for r in answers] == [503] * 4, answers[0].text
        assert served(a, b) == [4, 4]  # each call tried both
        # One outage, one step of the cooldown: not eight failures in a row (a minute).
        assert [m["failures"] for m in await pool_of(client, "pool")] == [1, 1]

        a.delay_s = b.delay_s = 0.0
        assert (await stream(client, "pool"))["event"] == "complete"
        answered = 0 if served(a, b) == [5, 4] else 1
        member = (await pool_of(client, "pool"))[answered]
        assert (member["state"], member["failures"]) == ("up", 0)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({}, "set exactly one of base_url, base_urls"),
        ({"base_url": "http://a/v1", "base_urls": ["http://b/v1"]}, "set exactly one of"),
        ({"base_urls": []}, "List should have at least 1 item"),
        ({"base_urls": [f"http://h{i}/v1" for i in range(33)]}, "at most 32 items"),
        ({"base_urls": ["http://a/v1", "http://a/v1/"]}, "base_urls[1] repeats an earlier URL"),
        # The same server, told apart only by credentials: one line in /metrics.
        ({"base_urls": ["http://u:x@A/v1", "http://u:secret@a/v1"]}, "base_urls[1] repeats"),
        ({"base_urls": ["http://a/v1", "http://u:secret@b:99999/v1"]}, "base_urls[1] has a port"),
        ({"base_urls": ["http://a/v1", "ftp://u:secret@b/v1"]}, "base_urls[1] is not an http(s)"),
        ({"base_url": "a.example/v1"}, "base_url is not an http(s) URL"),
        ({"base_urls": ["http://a/v1?x=1"]}, "base_urls[0]: give the server's base URL"),
        ({"base_urls": ["http://u:p@a/v1"], "api_key": "k"}, "base_urls[0] has a user in it"),
        ({"base_url": "http://a/v1", "health_check_interval_s": 0}, "greater than or equal to 1"),
    ],
)
def test_pool_settings_are_checked(endpoint: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(endpoints={"vllm": endpoint})
    assert str(info.value).startswith("PLUGGABLY_ENDPOINTS__VLLM")
    assert message in str(info.value)
    assert "secret" not in str(info.value)


def test_pools_come_from_yaml_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "pluggably.yaml"
    config.write_text(
        "endpoints:\n"
        "  vllm:\n"
        "    base_urls: [http://gpu-1:8000/v1, http://gpu-2:8000/v1]\n"
        "    health_check_interval_s: 5\n"
        "  ollama:\n"
        "    base_url: http://127.0.0.1:11434/v1\n"
    )
    monkeypatch.setenv("PLUGGABLY_CONFIG", str(config))
    settings = load_settings(secret_key_file=tmp_path / "k")
    assert settings.endpoints["vllm"].urls == ["http://gpu-1:8000/v1", "http://gpu-2:8000/v1"]
    assert settings.endpoints["vllm"].health_check_interval_s == 5
    assert settings.endpoints["ollama"].urls == ["http://127.0.0.1:11434/v1"]

    monkeypatch.setenv(
        "PLUGGABLY_ENDPOINTS",
        '{"llamacpp": {"base_urls": ["http://10.0.0.1:8080/v1", "http://10.0.0.2:8080/v1"]}}',
    )
    monkeypatch.setenv("PLUGGABLY_ENDPOINTS__LLAMACPP__MODELS", '["gemma"]')
    settings = load_settings(secret_key_file=tmp_path / "k")
    assert settings.endpoints["llamacpp"].urls == [
        "http://10.0.0.1:8080/v1",
        "http://10.0.0.2:8080/v1",
    ]
    assert settings.endpoints["llamacpp"].models == ["gemma"]
