"""Embedding requests routed to providers: the OpenAI-compatible family (the OpenAI
simulator) gets an embedding call and its vectors come back in output.embeddings with
the upstream's usage; a provider without embeddings (Anthropic) is a clear 400; chat
fallbacks are no candidates of an embedding request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, make_settings, running
from tests.fixtures.openai_sim import OpenAISim

ADMIN = {"X-API-Key": ADMIN_KEY}
TEXTS = ["the cat sat", "a dog ran far away"]


def sim_app(tmp_path: Path, database_url: str, sim: OpenAISim, **extra: Any) -> FastAPI:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={
            "openai": {"base_url": sim.base_url, "api_key": "sk-server-key-0001"},
            "anthropic": {"base_url": "http://127.0.0.1:9", "api_key": "sk-ant-server-0001"},
        },
        server_keys_allowed=["@admins"],
        **extra,
    )
    return create_app(settings)


async def ok(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await generate(client, ADMIN, **body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_an_openai_embedding_model_answers_with_vectors_and_upstream_usage(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = sim_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        answer = await ok(client, model="openai:text-embedding-3-small", input={"texts": TEXTS})
        assert (answer["provider"], answer["modality"]) == ("openai", "embedding")
        assert [len(v) for v in answer["output"]["embeddings"]] == [1536, 1536]
        assert answer["usage"]["prompt_tokens"] == 3 + 5  # the simulator: a token a word
        sent = openai_sim.requests_to("/v1/embeddings")[-1].body
        assert (sent["model"], sent["input"]) == ("text-embedding-3-small", TEXTS)

        # A bare vendor name embeds by its name; one prompt is one text.
        one = await ok(
            client,
            model="text-embedding-3-small",
            input={"prompt": "hello"},
            parameters={"dimensions": 256},
        )
        assert one["modality"] == "embedding"
        assert [len(v) for v in one["output"]["embeddings"]] == [256]
        assert openai_sim.requests_to("/v1/embeddings")[-1].body["dimensions"] == 256


async def test_without_a_local_embedder_texts_go_to_the_providers_embedding_model(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = sim_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        auto = await ok(client, input={"texts": TEXTS})
        assert auto["selection"]["selected_model"] == "openai:text-embedding-3-small"
        named = await ok(client, provider="openai", input={"texts": TEXTS})
        assert named["selection"]["selected_model"] == "openai:text-embedding-3-small"


async def test_anthropic_has_no_embeddings(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = sim_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        for body in (
            {"model": "anthropic:claude-3-5-haiku-latest", "input": {"texts": TEXTS}},
            {"provider": "anthropic", "input": {"texts": TEXTS}},
            {
                "model": "anthropic:claude-3-5-haiku-latest",
                "modality": "embedding",
                "input": {"prompt": "x"},
            },
        ):
            detail = assert_envelope(
                await generate(client, ADMIN, **body), 400, "feature_not_supported"
            )
            assert detail["message"].startswith("Anthropic has no embeddings API")


async def test_chat_fallbacks_are_not_candidates_of_an_embedding_request(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.fail_next(5, status=503)
    app = sim_app(
        tmp_path,
        database_url,
        openai_sim,
        fallbacks={"openai:text-embedding-3-small": ["openai:gpt-4o-mini"]},
    )
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model="openai:text-embedding-3-small", input={"texts": TEXTS}
        )
        assert response.status_code == 503, response.text
        tried = {r.body["model"] for r in openai_sim.requests_to("/v1/embeddings")}
        assert tried == {"text-embedding-3-small"}  # gpt-4o-mini was never asked to embed
        assert openai_sim.requests_to("/v1/chat/completions") == []
