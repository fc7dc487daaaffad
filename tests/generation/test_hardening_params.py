"""Numbers a request may carry (issue #15): NaN and Infinity (which Python's JSON reader
accepts) are refused wherever a number is taken, and ``max_tokens`` has a ceiling; each
surface answers in its own shape, naming the field, and the upstream is never called."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
    make_settings,
    running,
)
from tests.fixtures.openai_sim import OpenAISim

ADMIN = {"X-API-Key": ADMIN_KEY, "content-type": "application/json"}
MODEL = "openai:gpt-4o-mini"
# Spellings of non-finite numbers that Python's json module decodes (1e400 is inf).
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": openai_sim.base_url, "api_key": "sk-server-0000001"}},
        endpoints={"mine": {"base_url": openai_sim.base_url, "api_key": "sk-endpoint-0001"}},
        server_keys_allowed=["*"],
    )
    async with running(create_app(settings)) as application:
        yield application


def raw(body: dict[str, Any], **numbers: str) -> str:
    """``body`` as JSON with ``numbers`` spliced in as written (NaN is not valid JSON,
    so no JSON encoder writes it on purpose)."""
    text = json.dumps({**body, **{name: f"@{name}@" for name in numbers}})
    for name, spelled in numbers.items():
        text = text.replace(f'"@{name}@"', spelled)
    return text


async def post(client: httpx.AsyncClient, path: str, text: str) -> httpx.Response:
    return await client.post(path, content=text, headers=ADMIN)


def native(stream: bool = False, **numbers: str) -> str:
    body = {"model": MODEL, "input": {"prompt": "hi"}, "wait": True, "stream": stream}
    return raw(body, parameters=raw({}, **numbers))


def openai_chat(model: str = MODEL, stream: bool = False, **numbers: str) -> str:
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return raw(chat, **numbers)


def anthropic_message(stream: bool = False, **numbers: str) -> str:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    if "max_tokens" not in numbers:
        body["max_tokens"] = 16
    return raw(body, **numbers)


def openai_param(response: httpx.Response) -> str | None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error", error
    return error["param"]  # type: ignore[no-any-return]


def anthropic_message_of(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error", body
    return str(body["error"]["message"])


@pytest.mark.parametrize("spelled", NON_FINITE)
async def test_non_finite_numbers_are_refused_on_every_surface(
    app: FastAPI, openai_sim: OpenAISim, spelled: str
) -> None:
    async with client_for(app) as client:
        for stream in (False, True):
            for name in ("temperature", "top_p", "max_tokens", "seed"):
                response = await post(client, "/v1/generate", native(stream, **{name: spelled}))
                detail = assert_envelope(response, 422, "validation_error")
                assert detail["details"][0]["loc"] == ["body", "parameters", name], detail
                chat = openai_chat(stream=stream, **{name: spelled})
                response = await post(client, "/openai/v1/chat/completions", chat)
                assert openai_param(response) == name
            for name in ("temperature", "top_p", "max_tokens"):
                response = await post(
                    client, "/anthropic/v1/messages", anthropic_message(stream, **{name: spelled})
                )
                assert name in anthropic_message_of(response)
        # Fields other than parameters that take any JSON value.
        body = native().replace('"wait": true', f'"wait": true, "state_tokens": {{"x": {spelled}}}')
        detail = assert_envelope(await post(client, "/v1/generate", body), 422, "validation_error")
        assert detail["details"][0]["loc"][:3] == ["body", "state_tokens", "x"], detail
        completion = raw({"model": MODEL, "prompt": "hi"}, temperature=spelled)
        response = await post(client, "/openai/v1/completions", completion)
        assert openai_param(response) == "temperature"
    assert openai_sim.requests == []


async def test_max_tokens_has_a_ceiling(app: FastAPI, openai_sim: OpenAISim) -> None:
    huge = str(10**12)
    async with client_for(app) as client:
        response = await post(client, "/v1/generate", native(max_tokens=huge))
        detail = assert_envelope(response, 422, "validation_error")
        assert detail["details"][0]["loc"] == ["body", "parameters", "max_tokens"]
        assert "maximum of 128000" in detail["message"], detail
        for field in ("max_tokens", "max_completion_tokens"):
            chat = openai_chat(**{field: huge})
            response = await post(client, "/openai/v1/chat/completions", chat)
            assert openai_param(response) == "max_tokens"
        response = await post(client, "/anthropic/v1/messages", anthropic_message(max_tokens=huge))
        assert "max_tokens" in anthropic_message_of(response)
        # A model whose window is not known here: the ceiling is 1,000,000.
        openai_sim.models.append("some-new-model")
        unknown = openai_chat(model="mine:some-new-model", max_tokens=str(1_000_001))
        response = await post(client, "/openai/v1/chat/completions", unknown)
        assert openai_param(response) == "max_tokens"
        assert "1000000" in response.json()["error"]["message"]
        assert openai_sim.requests == []
        # Within the ceiling, the request goes through.
        fine = openai_chat(model="mine:some-new-model", max_tokens=str(1_000_000))
        response = await post(client, "/openai/v1/chat/completions", fine)
        assert response.status_code == 200, response.text
        assert openai_sim.requests[-1].body["max_tokens"] == 1_000_000
