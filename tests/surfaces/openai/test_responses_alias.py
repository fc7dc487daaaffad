"""The Responses API at ``/v1``, the base URL most OpenAI clients are given: plain,
streamed, continued and retrieved exactly as under ``/openai/v1``, and every route
asks for a credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI

from tests.conftest import client_for, running
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.surfaces.openai.test_responses import (
    MODEL,
    TEXT_EVENTS,
    check_sequence,
    events_of,
    strict_sdk,
)

ALIAS = "http://testserver/v1"
ROUTES = (
    ("POST", "/responses"),
    ("GET", "/responses/resp_x"),
    ("DELETE", "/responses/resp_x"),
    ("GET", "/responses/resp_x/input_items"),
)


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    application = gen_app(tmp_path, database_url, openai_sim)
    async with running(application):
        yield application


@pytest.fixture
async def alias_api(app: FastAPI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = strict_sdk(app, base_url=ALIAS)
    yield client
    await client.close()


async def test_plain_streamed_continued_and_retrieved_at_v1(
    alias_api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    first = await alias_api.responses.create(model=MODEL, input="first")
    assert first.output_text == "Echo: first"
    openai_sim.set_reply("gpt-4o-mini", "one two three")
    events = await events_of(alias_api, model=MODEL, input="second", previous_response_id=first.id)
    assert [e.type for e in events] == TEXT_EVENTS
    check_sequence(events)
    assert [
        m["content"] for m in openai_sim.requests_to("/v1/chat/completions")[-1].body["messages"]
    ] == ["first", "Echo: first", "second"]
    second = events[-1].response
    assert (await alias_api.responses.retrieve(second.id)).model_dump() == second.model_dump()


async def test_the_same_response_is_found_under_both_base_urls(
    app: FastAPI, alias_api: openai.AsyncOpenAI
) -> None:
    created = await alias_api.responses.create(model=MODEL, input="here")
    prefixed = strict_sdk(app)
    try:
        assert (await prefixed.responses.retrieve(created.id)).id == created.id
    finally:
        await prefixed.close()


@pytest.mark.parametrize("prefix", ["/openai/v1", "/v1"])
async def test_every_responses_route_needs_a_credential(app: FastAPI, prefix: str) -> None:
    async with client_for(app) as client:
        for method, path in ROUTES:
            response = await client.request(method, prefix + path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
