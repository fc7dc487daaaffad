"""GGUF embedding models (BERT-family encoders, or any GGUF with a pooling type)
through llama.cpp's embedding mode.

The whole of each text must fit one micro-batch (an encoder attends to all of it at
once), so the context, batch and micro-batch are one size: the model's trained context,
capped by the server's local context setting. Texts longer than that are cut to it.
Several texts share one decode; cancellation is checked between groups of texts."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from typing import Any

from pluggably.errors import BackendUnavailable, FeatureNotSupported
from pluggably.registry.gguf_header import read_fields
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, Piece
from pluggably.runtimes.embedding_vectors import batches, embedded

DEFAULT_CONTEXT = 512
MEAN_POOLING = 1
# llama.cpp's pooling types that make one vector per text: mean, CLS, last token.
SEQUENCE_POOLING = frozenset({1, 2, 3})


def header_pooling(fields: dict[str, Any]) -> int | None:
    """The GGUF's ``{arch}.pooling_type`` (llama.cpp's enum), if it has one."""
    arch = fields.get("general.architecture")
    value = fields.get(f"{arch}.pooling_type") if isinstance(arch, str) else None
    return value if isinstance(value, int) else None


class LlamaEmbeddingRuntime:
    kind = "llama_cpp"

    def __init__(self, spec: ModelSpec, *, n_ctx: int = 4096) -> None:
        self.spec = spec
        self.max_ctx = n_ctx
        self._llm: Any = None
        # One decode at a time: a Llama's context and batch are not thread-safe.
        self._encoding = threading.Lock()

    @property
    def memory_bytes(self) -> int:
        try:
            return self.spec.size_bytes or self.spec.path.stat().st_size
        except OSError:
            return 0

    def load(self) -> None:
        from llama_cpp import Llama

        if not self.spec.path.is_file():
            raise BackendUnavailable(f"The file of '{self.spec.model_id}' is missing.")
        try:
            fields = read_fields(self.spec.path)
            arch = fields.get("general.architecture")
            trained = fields.get(f"{arch}.context_length")
            n_ctx = min(trained if isinstance(trained, int) else DEFAULT_CONTEXT, self.max_ctx)
            pooling = header_pooling(fields)
            self._llm = Llama(
                model_path=str(self.spec.path),
                embedding=True,
                pooling_type=pooling if pooling in SEQUENCE_POOLING else MEAN_POOLING,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,
                n_threads=os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendUnavailable(
                f"llama.cpp could not load '{self.spec.model_id}' ({type(exc).__name__}) "
                "as an embedding model: the GGUF file is damaged or of an unsupported "
                "architecture."
            ) from None

    def unload(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def count_tokens(self, text: str) -> int | None:
        llm = self._llm
        return None if llm is None else len(llm.tokenize(text.encode()))

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        llm = self._llm
        if llm is None:
            raise BackendUnavailable(f"'{self.spec.model_id}' is not loaded.")
        vectors: list[list[float]] = []
        tokens = 0
        with self._encoding:
            for batch in batches(call.texts, cancel):
                batch_vectors, counted = llm.embed(
                    batch, normalize=False, truncate=True, return_count=True
                )
                vectors.extend(batch_vectors)
                tokens += int(counted)
        return embedded(vectors, tokens, call, cancel)

    def stream(
        self, call: LocalCall, cancel: threading.Event
    ) -> Generator[Piece, None, LocalResult]:
        raise FeatureNotSupported(f"'{self.spec.model_id}' embeds texts; it does not stream.")
