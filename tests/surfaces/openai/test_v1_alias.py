"""OpenAI's routes at ``/v1``, the base URL most OpenAI clients are given (API.md §8):
the routes that do not clash with native ones answer exactly as under ``/openai/v1``;
``GET /v1/models`` stays the native catalog and also carries OpenAI's list fields, so
the official SDK reads it too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY, client_for, running
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.surfaces.openai.test_openai_compat import error_of

ALIAS = "http://testserver/v1"
ALIASED = (
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/resp_x"),
    ("DELETE", "/v1/responses/resp_x"),
    ("GET", "/v1/responses/resp_x/input_items"),
)


def alias_sdk(app: FastAPI, key: str = ADMIN_KEY) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        base_url=ALIAS,
        api_key=key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, timeout=60),
    )


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    application = gen_app(tmp_path, database_url, openai_sim)
    async with running(application):
        yield application


async def test_chat_completions_and_completions_at_v1(app: FastAPI, openai_sim: OpenAISim) -> None:
    api = alias_sdk(app)
    try:
        chat = await api.chat.completions.create(
            model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
        )
        assert chat.choices[0].message.content == "Echo: hello there"
        assert chat.object == "chat.completion"
        pieces = [
            chunk.choices[0].delta.content or ""
            async for chunk in await api.chat.completions.create(
                model="openai:gpt-4o-mini",
                messages=[{"role": "user", "content": "streamed"}],
                stream=True,
            )
            if chunk.choices
        ]
        assert "".join(pieces) == "Echo: streamed"
        text = await api.completions.create(model="openai:gpt-4o-mini", prompt="legacy")
        assert text.choices[0].text == "Echo: legacy"
        assert openai_sim.requests[-1].body["model"] == "gpt-4o-mini"
    finally:
        await api.close()


async def test_errors_at_v1_take_openai_shape(app: FastAPI) -> None:
    api = alias_sdk(app)
    try:
        with pytest.raises(openai.NotFoundError) as missing:
            await api.chat.completions.create(
                model="local/none", messages=[{"role": "user", "content": "hi"}]
            )
        assert error_of(missing.value)["code"] == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            await api.chat.completions.create(model="openai:gpt-4o-mini", messages=[])
        assert error_of(bad.value)["param"] == "messages"
    finally:
        await api.close()
    refused = alias_sdk(app, key="not-a-key")
    try:
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            await refused.chat.completions.create(
                model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert error_of(unauthorized.value)["code"] == "unauthorized"
    finally:
        await refused.close()


async def test_every_aliased_route_needs_a_credential(app: FastAPI) -> None:
    async with client_for(app) as client:
        for method, path in ALIASED:
            response = await client.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized", (method, path)
        # The native routes beside them keep the native envelope.
        native = await client.get("/v1/sessions")
        assert native.status_code == 401
        assert native.json()["detail"]["code"] == "unauthorized"


async def test_v1_models_reads_as_both_shapes(app: FastAPI) -> None:
    async with client_for(app) as client:
        page = (await client.get("/v1/models", headers={"X-API-Key": ADMIN_KEY})).json()
    ids = [m["id"] for m in page["models"]]
    assert ids, page
    assert page["object"] == "list"
    assert [m["id"] for m in page["data"]] == ids
    assert {m["object"] for m in page["data"]} == {"model"}
    assert [m["owned_by"] for m in page["data"]] == [m["provider"] for m in page["models"]]
    assert "next_cursor" in page
    api = alias_sdk(app)
    try:
        listed = [model.id async for model in api.models.list()]
    finally:
        await api.close()
    assert "openai:gpt-4o-mini" in listed
