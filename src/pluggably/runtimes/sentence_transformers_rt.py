"""Embedding models in sentence-transformers folders (modules.json: a transformer, its
pooling, maybe a Normalize step) through the sentence-transformers library, on the CPU.

A folder's own Normalize step is dropped at load: normalizing is the request's choice
(``normalize``, default true), done after ``dimensions`` cuts the vectors, so a cut
vector is unit length again. Token counts are the model's own: each text's input ids
as the model reads them (special tokens included, cut at its max_seq_length)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

from pluggably.errors import FeatureNotSupported
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, Piece
from pluggably.runtimes.embedding_vectors import BATCH_SIZE, batches, embedded
from pluggably.runtimes.torch_common import (
    estimated_bytes,
    load_failed,
    not_loaded,
    quiet_loading,
    release_memory,
    require_folder,
)


class SentenceTransformersRuntime:
    kind = "sentence_transformers"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._model: Any = None
        # One encode at a time: a model's tokenizer and modules are not thread-safe.
        self._encoding = threading.Lock()

    @property
    def memory_bytes(self) -> int:
        # float32 weights on the CPU: about their size on disk.
        return estimated_bytes(self.spec)

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize

        require_folder(self.spec, "modules.json")
        quiet_loading()
        try:
            model = SentenceTransformer(str(self.spec.path), device="cpu", local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, ImportError) as exc:
            raise load_failed(self.spec, exc, "sentence-transformers") from None
        for index in reversed(range(len(model))):
            if isinstance(model[index], Normalize):
                del model[index]
        self._model = model

    def unload(self) -> None:
        self._model = None
        release_memory()

    def count_tokens(self, text: str) -> int | None:
        model = self._model
        return None if model is None else _counts(model, [text])[0]

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        model = self._model
        if model is None:
            raise not_loaded(self.spec)
        vectors: list[list[float]] = []
        tokens = 0
        with self._encoding:
            for batch in batches(call.texts, cancel):
                tokens += sum(_counts(model, batch))
                encoded = model.encode(
                    batch,
                    batch_size=BATCH_SIZE,
                    convert_to_numpy=True,
                    normalize_embeddings=False,
                    show_progress_bar=False,
                )
                vectors.extend(encoded.tolist())
        return embedded(vectors, tokens, call, cancel)

    def stream(
        self, call: LocalCall, cancel: threading.Event
    ) -> Generator[Piece, None, LocalResult]:
        raise FeatureNotSupported(f"'{self.spec.model_id}' embeds texts; it does not stream.")


def _counts(model: Any, texts: list[str]) -> list[int]:
    """The tokens the model reads of each text: special tokens included, cut at its
    max_seq_length as encoding cuts them."""
    ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
    return [len(row) for row in ids["input_ids"]]
