"""The Gemini simulator's embedContent and batchEmbedContents, checked with the official
google-genai SDK (``models.embed_content``, which sends batchEmbedContents on the
Gemini Developer API): shapes, ``output_dimensionality`` (cut, not renormalized, as the
real models answer below their full size), errors, and vectors that carry meaning."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from tests.fixtures.gemini_sim import GeminiSim, gemini_sim  # noqa: F401
from tests.fixtures.sim_vectors import cosine, embed

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

MODEL = "gemini-embedding-001"
KEY = "test-key"
MEAL = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]
BATCH = f"/v1beta/models/{MODEL}:batchEmbedContents"


@pytest.fixture
def sim(gemini_sim: GeminiSim) -> GeminiSim:  # noqa: F811
    gemini_sim.add_embedding_model(MODEL)
    return gemini_sim


def make_client(sim: GeminiSim) -> Any:
    http_options = types.HttpOptions(
        base_url=sim.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=KEY, http_options=http_options)


def test_embed_content_sends_one_batch_and_reads_every_vector(sim: GeminiSim) -> None:
    client = make_client(sim)  # kept: the SDK closes its transport with the client
    out = client.models.embed_content(model=MODEL, contents=MEAL)
    assert [len(e.values) for e in out.embeddings] == [3072] * 3
    assert out.embeddings[0].values == pytest.approx(embed(MEAL[0], 3072))
    sent = [r for r in sim.requests if r.path == BATCH]
    assert len(sent) == 1
    assert sent[0].body == {
        "requests": [
            {"content": {"parts": [{"text": text}], "role": "user"}, "model": f"models/{MODEL}"}
            for text in MEAL
        ]
    }


def test_output_dimensionality_cuts_without_renormalizing(sim: GeminiSim) -> None:
    config = types.EmbedContentConfig(output_dimensionality=16)
    client = make_client(sim)
    out = client.models.embed_content(model=MODEL, contents=MEAL[0], config=config)
    values = out.embeddings[0].values
    assert values == pytest.approx(embed(MEAL[0], 3072)[:16])
    assert math.sqrt(sum(x * x for x in values)) < 0.9


def test_paraphrases_score_closer_than_an_unrelated_sentence(sim: GeminiSim) -> None:
    client = make_client(sim)
    out = client.models.embed_content(model=MODEL, contents=MEAL)
    meal, paraphrase, market = (e.values for e in out.embeddings)
    assert cosine(meal, paraphrase) > cosine(meal, market) + 0.2


def test_single_embed_content_route(sim: GeminiSim) -> None:
    body = {"content": {"parts": [{"text": MEAL[0]}]}, "outputDimensionality": 4}
    r = httpx.post(
        f"{sim.url}/v1beta/models/{MODEL}:embedContent", json=body, headers={"x-goog-api-key": KEY}
    )
    assert r.status_code == 200
    assert r.json() == {"embedding": {"values": embed(MEAL[0], 3072)[:4]}}


def test_errors_as_the_real_service_gives_them(sim: GeminiSim) -> None:
    client = make_client(sim)
    with pytest.raises(errors.ClientError) as info:
        client.models.embed_content(model="gemini-2.0-flash", contents="x")
    assert info.value.code == 404
    with pytest.raises(errors.ClientError) as info:
        client.models.embed_content(model=MODEL, contents=["x"] * 101)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "at most 100 requests" in str(info.value.message)
    config = types.EmbedContentConfig(output_dimensionality=4000)
    with pytest.raises(errors.ClientError, match="outputDimensionality"):
        client.models.embed_content(model=MODEL, contents="x", config=config)
    sim.add_model("gemini-2.0-flash")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 404
