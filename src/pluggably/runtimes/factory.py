"""Which runtimes this installation has, and the runtime for a model's format. The
heavy libraries are imported only when a model of their kind loads."""

from __future__ import annotations

import importlib
import importlib.util

from pluggably.errors import FeatureNotSupported
from pluggably.runtimes.base import ModelSpec, Runtime

# format -> (runtime kind, module of the runtime class, class name, libraries it needs)
_RUNTIMES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "gguf": ("llama_cpp", "pluggably.runtimes.llama_cpp_rt", "LlamaCppRuntime", ("llama_cpp",)),
    "transformers": (
        "transformers",
        "pluggably.runtimes.transformers_rt",
        "TransformersRuntime",
        ("torch", "transformers"),
    ),
    "sentence_transformers": (
        "sentence_transformers",
        "pluggably.runtimes.sentence_transformers_rt",
        "SentenceTransformersRuntime",
        ("torch", "sentence_transformers"),
    ),
    "diffusers": (
        "diffusers",
        "pluggably.runtimes.diffusers_rt",
        "DiffusersRuntime",
        ("torch", "diffusers", "transformers"),
    ),
    "shap_e": (
        "shap_e",
        "pluggably.runtimes.shap_e_rt",
        "ShapERuntime",
        ("torch", "diffusers", "transformers", "trimesh"),
    ),
}
EXTRA = {
    "llama_cpp": "local",
    "transformers": "torch",
    "sentence_transformers": "torch",
    "diffusers": "torch",
    "shap_e": "torch",
}
# A GGUF embedding model runs in llama.cpp's embedding mode, a runtime of its own.
GGUF_EMBEDDING = ("pluggably.runtimes.llama_embed_rt", "LlamaEmbeddingRuntime")


def missing(kind: str) -> list[str]:
    """The libraries a runtime kind needs that are not installed."""
    needs = next(n for k, _m, _c, n in _RUNTIMES.values() if k == kind)
    return [name for name in needs if importlib.util.find_spec(name) is None]


def available() -> dict[str, bool]:
    """Runtime kind -> whether its libraries are installed (nothing is imported)."""
    return {kind: not missing(kind) for kind, *_ in _RUNTIMES.values()}


def check_available(spec: ModelSpec) -> tuple[str, str, str]:
    """(kind, module, class) of the runtime for the model; ``FeatureNotSupported`` when
    no runtime serves its format or its libraries are not installed."""
    if spec.format not in _RUNTIMES:
        raise FeatureNotSupported(f"No local runtime serves the format '{spec.format}'.")
    kind, module, cls, _needs = _RUNTIMES[spec.format]
    absent = missing(kind)
    if absent:
        raise FeatureNotSupported(
            f"The {kind} runtime is not installed here (missing {', '.join(absent)}); "
            f"install pluggably with the '{EXTRA[kind]}' extra to run '{spec.model_id}'."
        )
    return kind, module, cls


def make_runtime(spec: ModelSpec, *, context_tokens: int | None = None) -> Runtime:
    kind, module, cls = check_available(spec)
    if spec.format == "gguf" and spec.modality == "embedding":
        module, cls = GGUF_EMBEDDING
    runtime_class = getattr(importlib.import_module(module), cls)
    if kind == "llama_cpp" and context_tokens is not None:
        runtime: Runtime = runtime_class(spec, n_ctx=context_tokens)
    else:
        runtime = runtime_class(spec)
    return runtime
