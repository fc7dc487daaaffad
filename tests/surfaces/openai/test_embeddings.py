"""POST /openai/v1/embeddings (and /v1/embeddings) driven by the official `openai` SDK
against the OpenAI simulator through the gateway: float and base64 (the SDK's default,
which it decodes itself), dimensions, a semantic check, bare vendor names, a user's own
provider key, and errors in OpenAI's shape. Gemini's embeddings through the native
route over the Gemini simulator."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.providers.google import GoogleProvider
from tests.conftest import ADMIN_KEY, client_for, generate, make_settings, new_user, running
from tests.fixtures.gemini_sim import GeminiSim
from tests.fixtures.openai_sim import OpenAISim
from tests.fixtures.sim_vectors import cosine, embed, unit
from tests.generation.test_generate import gen_app
from tests.surfaces.openai.test_openai_compat import error_of, sdk
from tests.surfaces.openai.test_v1_alias import alias_sdk

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:text-embedding-3-small"
MEAL = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    application = gen_app(tmp_path, database_url, openai_sim)
    async with running(application):
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = sdk(app)
    try:
        yield client
    finally:
        await client.close()


async def test_float_vectors_in_openai_shape_with_the_upstream_usage(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    out = await api.embeddings.create(model=MODEL, input=MEAL, encoding_format="float")
    assert (out.object, out.model) == ("list", MODEL)
    assert [(d.object, d.index) for d in out.data] == [("embedding", i) for i in range(3)]
    for item, text in zip(out.data, MEAL, strict=True):
        assert item.embedding == pytest.approx(embed(text), abs=1e-9)
    assert (out.usage.prompt_tokens, out.usage.total_tokens) == (15, 15)
    sent = openai_sim.requests_to("/v1/embeddings")[-1]
    assert sent.body == {
        "model": "text-embedding-3-small",
        "input": MEAL,
        "encoding_format": "float",
    }
    assert sent.headers["authorization"] == "Bearer sk-server-key-0001"


async def test_the_sdk_default_base64_is_decoded_by_the_sdk(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    out = await api.embeddings.create(model=MODEL, input=MEAL[0])
    assert out.data[0].embedding == pytest.approx(embed(MEAL[0]), abs=1e-6)
    # The gateway asks its upstream for floats whatever the client asked of it.
    assert openai_sim.requests_to("/v1/embeddings")[-1].body["encoding_format"] == "float"


async def test_base64_asked_for_is_little_endian_float32(api: openai.AsyncOpenAI) -> None:
    out = await api.embeddings.create(model=MODEL, input=MEAL[:2], encoding_format="base64")
    for item, text in zip(out.data, MEAL[:2], strict=True):
        raw = base64.b64decode(str(item.embedding))
        assert len(raw) == 1536 * 4
        assert list(struct.unpack("<1536f", raw)) == pytest.approx(embed(text), abs=1e-6)


async def test_dimensions_go_upstream_and_come_back_unit_length(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    out = await api.embeddings.create(
        model=MODEL, input=MEAL[0], dimensions=8, encoding_format="float"
    )
    assert openai_sim.requests_to("/v1/embeddings")[-1].body["dimensions"] == 8
    assert out.data[0].embedding == pytest.approx(unit(embed(MEAL[0])[:8]))
    assert math.fsum(x * x for x in out.data[0].embedding) == pytest.approx(1.0)


async def test_paraphrases_score_closer_than_an_unrelated_sentence(
    api: openai.AsyncOpenAI,
) -> None:
    out = await api.embeddings.create(model=MODEL, input=MEAL)
    meal, paraphrase, market = (d.embedding for d in out.data)
    assert cosine(meal, paraphrase) > cosine(meal, market) + 0.2


async def test_a_bare_vendor_name_and_the_v1_base_url(app: FastAPI, openai_sim: OpenAISim) -> None:
    api = alias_sdk(app)
    try:
        out = await api.embeddings.create(
            model="text-embedding-3-small", input="hello there", encoding_format="float"
        )
    finally:
        await api.close()
    assert out.model == "text-embedding-3-small"
    assert out.data[0].embedding == pytest.approx(embed("hello there"), abs=1e-9)
    assert openai_sim.requests_to("/v1/embeddings")[-1].body["model"] == "text-embedding-3-small"


async def test_a_user_embeds_with_their_own_provider_key(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    async with client_for(app) as client:
        user = await new_user(client, "embedder")
        stored = await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-user-key-0000001"},
            headers=user,
        )
        assert stored.status_code == 201, stored.text
    api = sdk(app, user["Authorization"].removeprefix("Bearer "))
    try:
        out = await api.embeddings.create(model=MODEL, input=["one", "two"])
    finally:
        await api.close()
    assert len(out.data) == 2
    sent = openai_sim.requests_to("/v1/embeddings")[-1]
    assert sent.headers["authorization"] == "Bearer sk-user-key-0000001"


async def test_errors_come_in_openai_shape(api: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await api.embeddings.create(model="no-such-embedder", input="x")
    assert error_of(missing.value)["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as anthropic:
        await api.embeddings.create(model="anthropic:claude-3-5-haiku-latest", input="x")
    body = error_of(anthropic.value)
    assert body["code"] == "feature_not_supported"
    assert "Anthropic has no embeddings API" in body["message"]
    with pytest.raises(openai.BadRequestError) as tokens:
        await api.embeddings.create(model=MODEL, input=[[1, 2, 3]])
    body = error_of(tokens.value)
    assert (body["code"], body["param"]) == ("invalid_parameter", "input")
    assert "check_embedding_ctx_length=False" in body["message"]
    with pytest.raises(openai.BadRequestError) as empty:
        await api.embeddings.create(model=MODEL, input=[])
    assert error_of(empty.value)["param"] == "input"
    with pytest.raises(openai.BadRequestError) as blank:
        await api.embeddings.create(model=MODEL, input=["fine", ""])
    assert error_of(blank.value)["param"] == "input[1]"
    with pytest.raises(openai.BadRequestError) as dims:
        await api.embeddings.create(model=MODEL, input="x", dimensions=0)
    assert error_of(dims.value)["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as fmt:
        await api.embeddings.create(model=MODEL, input="x", encoding_format="hex")  # type: ignore[arg-type]
    assert error_of(fmt.value)["param"] == "encoding_format"


async def test_a_chat_model_refused_upstream_is_a_400_quoting_the_provider(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    # A provider model's name does not prove what it is (Azure deployments, endpoint
    # models): the call goes upstream, and the upstream's refusal comes back.
    with pytest.raises(openai.BadRequestError) as refused:
        await api.embeddings.create(model="openai:gpt-4o-mini", input="x")
    body = error_of(refused.value)
    assert body["code"] == "invalid_parameter"
    assert "does not support embeddings" in body["message"]
    assert openai_sim.requests_to("/v1/embeddings")[-1].body["model"] == "gpt-4o-mini"


async def test_anonymous_callers_are_refused(app: FastAPI) -> None:
    async with client_for(app) as client:
        for path in ("/openai/v1/embeddings", "/v1/embeddings"):
            r = await client.post(path, json={"model": MODEL, "input": "x"})
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "unauthorized"


async def test_gemini_embeddings_through_the_native_route(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    gemini_sim.add_embedding_model("gemini-embedding-001")
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"google": {"base_url": gemini_sim.url, "api_key": "server-google-key-0001"}},
        server_keys_allowed=["@admins"],
    )
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        container = app.state.container
        container.providers.register(GoogleProvider("google", container.http, gemini_sim.url))
        r = await generate(
            client,
            ADMIN,
            model="google:gemini-embedding-001",
            input={"texts": MEAL},
            parameters={"dimensions": 32},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["modality"], body["provider"], body["finish_reason"]) == (
        "embedding",
        "google",
        "stop",
    )
    vectors = body["output"]["embeddings"]
    assert vectors[0] == pytest.approx(unit(embed(MEAL[0], 3072)[:32]))
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        sum(math.ceil(len(t) / 4) for t in MEAL),
        0,
    )
    sent = [r for r in gemini_sim.requests if r.path.endswith(":batchEmbedContents")][-1]
    assert sent.headers["x-goog-api-key"] == "server-google-key-0001"
    assert [q["outputDimensionality"] for q in sent.body["requests"]] == [32, 32, 32]


async def test_bad_json_is_a_400_in_openai_shape(app: FastAPI) -> None:
    async with client_for(app) as client:
        for path in ("/openai/v1/embeddings", "/v1/embeddings"):
            r = await client.post(
                path, content=b"{not json", headers={**ADMIN, "content-type": "application/json"}
            )
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "invalid_json"


async def test_provider_embedding_models_are_listed_as_such(app: FastAPI) -> None:
    async with client_for(app) as client:
        r = await client.get("/v1/models", params={"modality": "embedding"}, headers=ADMIN)
        assert r.status_code == 200, r.text
        ids = {m["id"] for m in r.json()["models"]}
        listed = (await client.get("/openai/v1/models", headers=ADMIN)).json()["data"]
    assert {"openai:text-embedding-3-small", "openai:text-embedding-ada-002"} <= ids
    assert "openai:gpt-4o-mini" not in ids
    assert "openai:text-embedding-3-small" in {m["id"] for m in listed}
