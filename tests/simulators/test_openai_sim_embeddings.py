"""The OpenAI simulator's POST /v1/embeddings, checked with the official `openai` SDK: the
shapes it parses (float and base64, which the SDK decodes itself), `dimensions`, token
usage, the errors the real API gives, and vectors that carry meaning (shared words)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from tests.fixtures.openai_sim import OpenAISim, openai_sim  # noqa: F401
from tests.fixtures.sim_vectors import cosine, embed, from_float32_base64

MODEL = "text-embedding-3-small"
KEY = "sk-test-0123456789abcdef"
MEAL = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]


@pytest.fixture
def client(openai_sim: OpenAISim) -> Iterator[OpenAI]:  # noqa: F811
    with OpenAI(api_key=KEY, base_url=openai_sim.base_url, max_retries=0) as c:
        yield c


def test_float_vectors_in_order_with_usage(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    out = client.embeddings.create(model=MODEL, input=MEAL, encoding_format="float")
    assert out.object == "list"
    assert out.model == MODEL
    assert [d.index for d in out.data] == [0, 1, 2]
    assert [d.object for d in out.data] == ["embedding"] * 3
    assert out.data[0].embedding == pytest.approx(embed(MEAL[0]), abs=1e-12)
    assert len(out.data[0].embedding) == 1536
    assert (out.usage.prompt_tokens, out.usage.total_tokens) == (15, 15)
    sent = openai_sim.requests_to("/v1/embeddings")[-1].body
    assert sent == {"model": MODEL, "input": MEAL, "encoding_format": "float"}


def test_the_sdk_default_asks_for_base64_and_decodes_it(
    client: OpenAI,
    openai_sim: OpenAISim,  # noqa: F811
) -> None:
    out = client.embeddings.create(model=MODEL, input="A man is eating food.")
    assert openai_sim.requests_to("/v1/embeddings")[-1].body["encoding_format"] == "base64"
    assert out.data[0].embedding == pytest.approx(embed(MEAL[0]), abs=1e-7)


def test_base64_asked_for_is_little_endian_float32(client: OpenAI) -> None:
    out = client.embeddings.create(model=MODEL, input=MEAL[0], encoding_format="base64")
    raw = out.data[0].embedding
    assert isinstance(raw, str)  # asked for explicitly: the SDK hands the string over
    assert from_float32_base64(raw) == pytest.approx(embed(MEAL[0]), abs=1e-7)


def test_dimensions_shortens_and_renormalizes(client: OpenAI) -> None:
    out = client.embeddings.create(
        model=MODEL, input=MEAL[0], dimensions=8, encoding_format="float"
    )
    vector = out.data[0].embedding
    assert len(vector) == 8
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0)


def test_paraphrases_score_closer_than_an_unrelated_sentence(client: OpenAI) -> None:
    out = client.embeddings.create(model=MODEL, input=MEAL, encoding_format="float")
    meal, paraphrase, market = (d.embedding for d in out.data)
    assert cosine(meal, paraphrase) > cosine(meal, market) + 0.2


def test_token_arrays_are_embedded_and_counted(client: OpenAI) -> None:
    out = client.embeddings.create(model=MODEL, input=[[1, 2, 3], [4]], encoding_format="float")
    assert len(out.data) == 2
    assert out.usage.prompt_tokens == 4


def test_errors_as_the_real_api_gives_them(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
    with pytest.raises(openai.BadRequestError, match=r"'\$\.input' is invalid"):
        client.embeddings.create(model=MODEL, input="")
    with pytest.raises(openai.BadRequestError, match="does not support embeddings"):
        client.embeddings.create(model="gpt-4o-mini", input="x")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-9", input="x")
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument"):
        client.embeddings.create(model=MODEL, input="x", extra_body={"normalize": True})
