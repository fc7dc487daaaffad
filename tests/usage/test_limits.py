"""Limits over HTTP (API.md §9): rpm, tpm, max_concurrent, budgets and allow-lists at
the server, user and token levels; their codes, Retry-After and x-ratelimit-*
headers; exact admission under concurrency; one count through every surface."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from datetime import UTC, datetime
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
)
from tests.fixtures.openai_sim import OpenAISim

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"
HELLO = {"model": MODEL, "input": {"prompt": "hello"}}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}


def limits_app(tmp_path: Path, database_url: str, sim: OpenAISim, **extra: Any) -> FastAPI:
    """The simulator as openai, its server key usable by everyone."""
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": sim.base_url, "api_key": "sk-server-key-0001"}},
        server_keys_allowed=["*"],
        **extra,
    )
    return create_app(settings)


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/v1/users/me", headers=headers)).json()["id"])


async def set_limits(client: httpx.AsyncClient, headers: dict[str, str], **limits: Any) -> None:
    uid = await user_id(client, headers)
    response = await client.put(f"/v1/users/{uid}/limits", json=limits, headers=ADMIN)
    assert response.status_code == 200, response.text


async def api_token(
    client: httpx.AsyncClient, headers: dict[str, str], **limits: Any
) -> dict[str, str]:
    body: dict[str, Any] = {"name": "limited"}
    if limits:
        body["limits"] = limits
    response = await client.post("/v1/users/tokens", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def seconds_to_next_minute() -> float:
    return 60.0 - (time.time() % 60.0)


@pytest.fixture(autouse=True)
async def _not_at_a_minute_boundary() -> None:
    """rpm and tpm count per wall-clock minute: a test that crosses a boundary would
    see its count start over. Start with enough of the minute left."""
    if seconds_to_next_minute() < 12:
        await asyncio.sleep(seconds_to_next_minute() + 0.05)


async def test_rpm_counts_down_in_headers_then_refuses_with_retry_after(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        plain = await generate(client, alice, **HELLO)
        assert plain.status_code == 200, plain.text
        assert not [h for h in plain.headers if h.startswith("x-ratelimit")]  # no limit yet

        await set_limits(client, alice, rpm=3)
        remaining = []
        for _ in range(3):
            response = await generate(client, alice, **HELLO)
            assert response.status_code == 200, response.text
            assert response.headers["x-ratelimit-limit-requests"] == "3"
            assert response.headers["x-ratelimit-reset-requests"].endswith("s")
            remaining.append(response.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["2", "1", "0"]

        refused = await generate(client, alice, **HELLO)
        detail = assert_envelope(refused, 429, "rate_limited")
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 60
        assert detail["retry_after"] == wait
        assert math.isclose(wait, seconds_to_next_minute(), abs_tol=2)
        assert "3 requests per minute" in detail["message"]
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        # A refused request never reached the upstream, and is not an error of the model.
        assert len(openai_sim.requests_to("/v1/chat/completions")) == 4
        # The admin is not limited by what is set on alice.
        assert (await generate(client, ADMIN, **HELLO)).status_code == 200
        metrics = (await client.get("/metrics", headers=ADMIN)).text
        assert 'pluggably_limit_refusals_total{code="rate_limited"} 1.0' in metrics


async def test_64_concurrent_requests_against_rpm_10_admit_exactly_10(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app, timeout=60) as client:
        alice = await new_user(client, "alice")
        await set_limits(client, alice, rpm=10)
        responses = await asyncio.gather(*(generate(client, alice, **HELLO) for _ in range(64)))
        assert Counter(r.status_code for r in responses) == {200: 10, 429: 54}
        assert {r.json()["detail"]["code"] for r in responses if r.status_code == 429} == {
            "rate_limited"
        }
        remaining = sorted(
            int(r.headers["x-ratelimit-remaining-requests"])
            for r in responses
            if r.status_code == 200
        )
        assert remaining == list(range(10))  # each admission saw the count before it


async def test_tpm_admits_on_an_estimate_and_settles_on_real_usage(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        await set_limits(client, alice, tpm=200)
        body = {**HELLO, "parameters": {"max_tokens": 50}}
        first = await generate(client, alice, **body)
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit-tokens"] == "200"
        after_first = int(first.headers["x-ratelimit-remaining-tokens"])
        estimate = 200 - after_first
        assert estimate > 50  # the prompt and max_tokens
        used = first.json()["usage"]["total_tokens"]
        assert used < estimate  # the simulator answered with a few tokens

        second = await generate(client, alice, **body)
        # The first request's estimate was replaced by its real usage.
        assert int(second.headers["x-ratelimit-remaining-tokens"]) == 200 - used - estimate

        async with client.stream(
            "POST", "/v1/generate", json={**body, "stream": True}, headers=alice
        ) as stream:  # a stream carries the headers on its 200
            assert stream.status_code == 200
            assert stream.headers["x-ratelimit-limit-tokens"] == "200"
            await stream.aread()
        too_big = await generate(client, alice, **{**HELLO, "parameters": {"max_tokens": 500}})
        detail = assert_envelope(too_big, 429, "rate_limited")
        assert "max_tokens" in detail["message"]
        assert "retry-after" not in too_big.headers  # waiting does not help

        while True:  # spend the rest of the minute's tokens
            response = await generate(client, alice, **body)
            if response.status_code != 200:
                break
        detail = assert_envelope(response, 429, "rate_limited")
        assert "tokens per minute" in detail["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_max_concurrent_counts_requests_in_flight_and_frees_the_slot(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app, timeout=30) as client:
        alice = await new_user(client, "alice")
        await set_limits(client, alice, max_concurrent=2)
        openai_sim.delay_s = 0.6
        slow = [asyncio.ensure_future(generate(client, alice, **HELLO)) for _ in range(2)]
        while len(openai_sim.requests_to("/v1/chat/completions")) < 2:
            await asyncio.sleep(0.01)
        third = await generate(client, alice, **HELLO)
        detail = assert_envelope(third, 429, "rate_limited")
        assert "2 requests at once" in detail["message"]
        assert third.headers["retry-after"] == "1"
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
        openai_sim.delay_s = 0.0
        # A stream holds its slot until it ends, then gives it back.
        async with client.stream(
            "POST", "/v1/generate", json={**HELLO, "stream": True}, headers=alice
        ) as stream:
            assert stream.status_code == 200
            await stream.aread()
        after = [await generate(client, alice, **HELLO) for _ in range(3)]
        assert [r.status_code for r in after] == [200, 200, 200]


async def test_a_model_outside_the_allow_list_is_403_on_every_surface(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        await set_limits(client, alice, models=["openai:gpt-4o-mini*"])
        assert (await generate(client, alice, **HELLO)).status_code == 200
        refused = await generate(client, alice, model="openai:gpt-4o", input={"prompt": "hi"})
        detail = assert_envelope(refused, 403, "model_not_allowed")
        assert "openai:gpt-4o" in detail["message"]
        assert "openai:gpt-4o-mini*" in detail["message"]
        assert "retry-after" not in refused.headers

        openai = await client.post(
            "/openai/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=alice
        )
        assert openai.status_code == 403
        assert openai.json()["error"]["code"] == "model_not_allowed"
        anthropic = await client.post(
            "/anthropic/v1/messages",
            json={**CHAT, "model": "openai:gpt-4o", "max_tokens": 16},
            headers=alice,
        )
        assert anthropic.status_code == 403
        assert anthropic.json()["error"]["type"] == "permission_error"
        ollama = await client.post(
            "/api/chat", json={**CHAT, "model": "openai:gpt-4o", "stream": False}, headers=alice
        )
        assert ollama.status_code == 403
        assert "may not use" in ollama.json()["error"]
        # The model named in a request that names none (the user's preferred model).
        patched = await client.patch(
            "/v1/users/me", json={"preferred_model": "openai:gpt-4o"}, headers=alice
        )
        assert patched.status_code == 200
        auto = await generate(client, alice, input={"prompt": "hi"})
        assert_envelope(auto, 403, "model_not_allowed")


async def test_one_count_through_every_surface_and_every_credential(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """rpm 7 on the user: native, a session turn, OpenAI chat, OpenAI completions,
    Anthropic, Ollama, the Responses API, through a login and an API token, share it."""
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        token = await api_token(client, alice)
        session = (await client.post("/v1/sessions", json={}, headers=alice)).json()["id"]
        await set_limits(client, alice, rpm=7)
        calls = [
            ("POST", "/v1/generate", HELLO, alice),
            ("POST", f"/v1/sessions/{session}/generate", HELLO, token),
            ("POST", "/openai/v1/chat/completions", CHAT, alice),
            ("POST", "/v1/completions", {"model": MODEL, "prompt": "hi"}, token),
            ("POST", "/anthropic/v1/messages", {**CHAT, "max_tokens": 16}, token),
            ("POST", "/api/chat", {**CHAT, "stream": False}, alice),
            ("POST", "/openai/v1/responses", {"model": MODEL, "input": "hi"}, token),
        ]
        for method, path, body, headers in calls:
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["x-ratelimit-limit-requests"] == "7", path
        remaining = 7 - len(calls)
        assert response.headers["x-ratelimit-remaining-requests"] == str(remaining)

        refusals = [
            await client.post("/openai/v1/chat/completions", json=CHAT, headers=token),
            await client.post(
                "/anthropic/v1/messages", json={**CHAT, "max_tokens": 16}, headers=alice
            ),
            await client.post("/api/chat", json={**CHAT, "stream": False}, headers=token),
            await client.post(
                "/openai/v1/responses", json={"model": MODEL, "input": "hi"}, headers=alice
            ),
            await generate(client, token, **HELLO),
        ]
        assert [r.status_code for r in refusals] == [429] * 5
        for refusal in refusals:
            assert 1 <= int(refusal.headers["retry-after"]) <= 60
        assert refusals[0].json()["error"]["code"] == "rate_limited"  # OpenAI's shape
        assert refusals[1].json()["error"]["type"] == "rate_limit_error"  # Anthropic's
        assert "requests per minute" in refusals[2].json()["error"]  # Ollama's
        assert_envelope(refusals[4], 429, "rate_limited")
        # Streams are refused before their 200.
        async with client.stream(
            "POST", "/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=alice
        ) as stream:
            assert stream.status_code == 429


async def test_a_token_limit_binds_the_token_and_not_its_owner(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        token = await api_token(client, alice, rpm=2, models=["openai:gpt-4o-mini"])
        other = await api_token(client, alice)
        assert [(await generate(client, token, **HELLO)).status_code for _ in range(2)] == [
            200,
            200,
        ]
        refused = await generate(client, token, **HELLO)
        detail = assert_envelope(refused, 429, "rate_limited")
        assert "this API token" in detail["message"]
        assert (await generate(client, alice, **HELLO)).status_code == 200  # the login
        assert (await generate(client, other, **HELLO)).status_code == 200  # another token
        wrong = await generate(client, token, model="openai:gpt-4o", input={"prompt": "hi"})
        assert_envelope(wrong, 403, "model_not_allowed")


async def test_the_server_default_limits_users_and_not_admins(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = limits_app(tmp_path, database_url, openai_sim, limits={"rpm": 2})
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        statuses = [(await generate(client, alice, **HELLO)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        # The strictest applies: a wider user limit does not lift the server default.
        await set_limits(client, alice, rpm=100)
        assert_envelope(await generate(client, alice, **HELLO), 429, "rate_limited")
        admin = [await generate(client, ADMIN, **HELLO) for _ in range(4)]
        assert [r.status_code for r in admin] == [200] * 4
        assert "x-ratelimit-limit-requests" not in admin[0].headers


async def test_a_budget_on_real_prices_refuses_until_the_period_resets(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """gpt-4o-mini at the shipped prices; the simulator reports the usage."""
    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        first = await generate(client, alice, **HELLO)
        cost = first.json()["usage"]["cost_usd"]
        assert cost > 0
        # Room for two more requests like it: the third is refused.
        await set_limits(client, alice, budget_usd=cost * 2.5, budget_period="day")
        assert (await generate(client, alice, **HELLO)).status_code == 200  # 2 x cost spent
        assert (await generate(client, alice, **HELLO)).status_code == 200  # 3 x cost > budget
        refused = await generate(client, alice, **HELLO)
        detail = assert_envelope(refused, 429, "budget_exceeded")
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86400
        assert math.isclose(
            int(refused.headers["retry-after"]), midnight - now.timestamp(), abs_tol=3
        )
        assert "daily budget" in detail["message"]
        # Another surface is refused too.
        openai = await client.post("/openai/v1/chat/completions", json=CHAT, headers=alice)
        assert openai.status_code == 429
        assert openai.json()["error"]["code"] == "budget_exceeded"
        # A larger budget lets the user go on.
        await set_limits(client, alice, budget_usd=1.0, budget_period="day")
        assert (await generate(client, alice, **HELLO)).status_code == 200


async def test_two_instances_on_one_postgresql_share_the_count(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """Two app instances (replicas) on one database: 64 requests spread over both
    against rpm 10 admit exactly 10; a concurrency slot taken on one counts on the
    other."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share counts through PostgreSQL")
    first = limits_app(tmp_path, database_url, openai_sim)
    second = limits_app(tmp_path, database_url, openai_sim)
    async with (
        running(first),
        running(second),
        client_for(first, timeout=60) as a,
        client_for(second, timeout=60) as b,
    ):
        alice = await new_user(a, "alice")
        await set_limits(a, alice, rpm=10, max_concurrent=40)
        calls = [generate(a if i % 2 else b, alice, **HELLO) for i in range(64)]
        responses = await asyncio.gather(*calls)
        assert Counter(r.status_code for r in responses) == {200: 10, 429: 54}

        await set_limits(a, alice, max_concurrent=1)
        await asyncio.sleep(2.1)  # the other replica reads users' limits at most 2 s old
        openai_sim.delay_s = 0.6
        slow = asyncio.ensure_future(generate(a, alice, **HELLO))
        while len(openai_sim.requests_to("/v1/chat/completions")) < 11:
            await asyncio.sleep(0.01)
        other = await generate(b, alice, **HELLO)
        detail = assert_envelope(other, 429, "rate_limited")
        assert "1 requests at once" in detail["message"]
        assert (await slow).status_code == 200


async def test_a_stream_closed_before_it_started_gives_its_slot_back(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """A client that goes away before its stream's body is read: the request ends as
    cancelled and its concurrency slot is free for the next one."""
    from pluggably.auth.principal import ALL_SCOPES, Principal
    from pluggably.generation.schemas import GenerateRequest

    app = limits_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        uid = await user_id(client, alice)
        await set_limits(client, alice, max_concurrent=1)
        service = app.state.container.generation
        principal = Principal(user_id=uid, role="user", scopes=ALL_SCOPES, via="login")
        plan = await service.prepare(principal, GenerateRequest(**HELLO, stream=True))
        assert_envelope(await generate(client, alice, **HELLO), 429, "rate_limited")
        await service.stream(plan).aclose()  # never iterated
        record = await client.get(f"/v1/requests/{plan.request_id}", headers=alice)
        assert record.json()["status"] == "cancelled"
        assert (await generate(client, alice, **HELLO)).status_code == 200


def test_a_stream_cut_short_still_counts_what_it_used(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    """Through a real server: a client leaving before the final usage chunk does not
    escape tpm or a budget; the prompt and the text written so far count, estimated."""
    from tests.generation.test_generate import serve_with
    from tests.serving.test_serve import stop_server

    openai_sim.set_reply("gpt-4o-mini", " ".join(f"w{i}" for i in range(200)))
    openai_sim.token_delay_s = 0.05
    proc, log_path = serve_with(tmp_path, free_port, openai_sim)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{free_port}", timeout=10) as client:
            me = client.get("/v1/users/me", headers=ADMIN).json()["id"]
            put = client.put(f"/v1/users/{me}/limits", json={"tpm": 5000}, headers=ADMIN)
            assert put.status_code == 200, put.text
            prompt = {"prompt": "tell me a long story " * 20}
            body = {"model": MODEL, "input": prompt, "stream": True}
            request_id = ""
            with client.stream("POST", "/v1/generate", json=body, headers=ADMIN) as stream:
                for line in stream.iter_lines():
                    frame = json.loads(line[6:]) if line.startswith("data: {") else {}
                    request_id = request_id or frame.get("request_id", "")
                    if "choices" in frame:
                        break  # the client goes away after the first words
            for _ in range(100):
                record = client.get(f"/v1/requests/{request_id}", headers=ADMIN).json()
                if record["status"] != "running":
                    break
                time.sleep(0.05)
            assert record["status"] == "cancelled"
            totals = client.get("/v1/usage", headers=ADMIN).json()["totals"]
            assert totals["prompt_tokens"] > 60  # the long prompt, estimated
            assert totals["completion_tokens"] >= 1
            assert totals["cost_usd"] > 0
            openai_sim.token_delay_s = 0.0
            after = client.post("/v1/generate", json=HELLO, headers=ADMIN)
            remaining = int(after.headers["x-ratelimit-remaining-tokens"])
            assert remaining < 5000 - totals["prompt_tokens"]
    finally:
        stop_server(proc, log_path)
