"""Defects third-party clients found on the compatibility surfaces (issue #14), each
driven through HTTP with the vendor's own SDK: the vendor's wire format is the contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY, client_for, running
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.openai_sim import OpenAISim
from tests.test_anthropic_compat import compat_app
from tests.test_anthropic_compat import sdk as anthropic_sdk
from tests.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
GPT = "openai:gpt-4o-mini"
CLAUDE = "claude-3-5-haiku-latest"
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
OPENAI_BASE = "http://testserver/openai/v1"


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_TEXT = _AnyText()


def openai_sdk(app: FastAPI, *, retries: int = 0) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        base_url=OPENAI_BASE,
        api_key=ADMIN_KEY,
        max_retries=retries,
        http_client=httpx.AsyncClient(transport=transport, timeout=60),
    )


def openai_error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


async def drain(stream: Any, seen: list[str]) -> None:
    async for chunk in stream:
        seen += [c.delta.content or "" for c in chunk.choices]


# 1. A stream that fails before its first token answers the error's real status.


async def test_openai_stream_refused_upstream_is_a_real_429_the_sdk_retries(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)

    def calls() -> int:
        return len(openai_sim.requests_to("/v1/chat/completions"))

    async with running(app):
        api = openai_sdk(app, retries=2)
        try:
            openai_sim.fail_next(n=3, status=429)
            with pytest.raises(openai.RateLimitError) as limited:
                await api.chat.completions.create(model=GPT, messages=HELLO, stream=True)
            assert limited.value.status_code == 429
            assert limited.value.response.headers["retry-after"] == "1"
            error = openai_error(limited.value)
            assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
            assert calls() == 3  # the first try and the SDK's two retries

            openai_sim.fail_next(status=429)  # once: the SDK's retry gets the stream
            stream = await api.chat.completions.create(model=GPT, messages=HELLO, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "Echo: hello there"
            assert calls() == 5

            openai_sim.fail_next(status=502)  # legacy completions too, any status
            with pytest.raises(openai.InternalServerError) as failing:
                await api.with_options(max_retries=0).completions.create(
                    model=GPT, prompt="say hi", stream=True
                )
            assert failing.value.status_code == 503
            assert openai_error(failing.value)["code"] == "backend_unavailable"
            assert failing.value.response.headers["retry-after"] == "5"

            # After the first token the 200 has gone out: an error chunk ends the stream.
            openai_sim.set_reply("gpt-4o-mini", "a b c d e f")
            openai_sim.break_stream_after(2)
            broken = await api.chat.completions.create(model=GPT, messages=HELLO, stream=True)
            seen: list[str] = []
            with pytest.raises(openai.APIError) as late:
                await drain(broken, seen)
            assert "".join(seen) == "a b "
            assert isinstance(late.value.body, dict)
            assert late.value.body["code"] == "backend_unavailable"
        finally:
            await api.close()


async def test_anthropic_stream_refused_upstream_says_when_to_retry(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = compat_app(tmp_path, database_url, openai=openai_sim)
    async with running(app), anthropic_sdk(app) as client:
        openai_sim.fail_next(status=429, retry_after=3)
        with pytest.raises(anthropic.RateLimitError) as limited:
            async with client.messages.stream(model=GPT, max_tokens=8, messages=HELLO) as stream:
                await stream.get_final_message()
        assert limited.value.response.headers["retry-after"] == "3"
        assert limited.value.body == {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": ANY_TEXT},
            "request_id": limited.value.response.headers["x-request-id"],
        }


# 3. Answers name the model the caller asked for, as the caller wrote it.


async def test_answers_echo_the_model_id_the_caller_sent(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    anthropic_sim: AnthropicSim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    app = compat_app(
        tmp_path,
        database_url,
        openai=openai_sim,
        claude=anthropic_sim,
        endpoints={"backup": {"base_url": backup.base_url, "api_key": "sk-backup-0001"}},
        fallbacks={"gpt-4o-mini": ["backup:gpt-4o-mini"]},
    )
    async with running(app), client_for(app) as http, anthropic_sdk(app) as claude:
        api = openai_sdk(app)
        try:
            chat = await api.chat.completions.create(model="gpt-4o", messages=HELLO)
            assert chat.model == "gpt-4o"  # not openai:gpt-4o
            stream = await api.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
            assert {chunk.model async for chunk in stream} == {"gpt-4o"}
            legacy = await api.completions.create(model="gpt-4o", prompt="hi")
            assert legacy.model == "gpt-4o"

            # On a fallback the answer names the model that wrote it.
            openai_sim.fail_next(status=503)
            fell = await api.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert fell.model == "backup:gpt-4o-mini"
        finally:
            await api.close()

        message = await claude.messages.create(model=CLAUDE, max_tokens=16, messages=HELLO)
        assert message.model == CLAUDE  # not anthropic:claude-…
        async with claude.messages.stream(model=CLAUDE, max_tokens=16, messages=HELLO) as events:
            starts = [e.message.model async for e in events if e.type == "message_start"]
            final = await events.get_final_message()
        assert (starts, final.model) == ([CLAUDE], CLAUDE)

        native = await http.post(
            "/v1/generate", json={"model": "gpt-4o", "input": {"prompt": "hi"}}, headers=ADMIN
        )
        body = native.json()
        assert body["model"] == "gpt-4o"
        assert body["selection"]["selected_model"] == "openai:gpt-4o"  # what actually ran
        auto = await http.post("/v1/generate", json={"input": {"prompt": "hi"}}, headers=ADMIN)
        assert auto.json()["model"] == auto.json()["selection"]["selected_model"]  # none asked
