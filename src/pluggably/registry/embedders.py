"""How discovery tells an embedding model: a GGUF by its header, a sentence-transformers
folder by its small config files (its vectors' width and its window)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Encoder architectures of llama.cpp: their GGUFs embed, they do not generate.
ENCODERS = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert"}
    | {"neo-bert", "eurobert", "t5encoder"}
)
RANK_POOLING = 4  # llama.cpp's pooling type of rerankers: a score, not a vector


def embeds(fields: dict[str, Any], arch: str) -> bool:
    """A GGUF that makes one vector per text: a pooling type that pools a sequence
    (mean, CLS, last), a non-causal attention, or an encoder architecture. Rerankers
    (rank pooling) score pairs instead: they are not embedding models."""
    pooling = fields.get(f"{arch}.pooling_type")
    if pooling == RANK_POOLING:
        return False
    if isinstance(pooling, int) and 1 <= pooling <= 3:
        return True
    return fields.get(f"{arch}.attention.causal") is False or arch in ENCODERS


def sentence_transformers_capabilities(directory: Path) -> dict[str, Any]:
    """A sentence-transformers folder's capabilities: the width of its vectors (its
    pooling's, else the transformer's) and its window, when its files say."""
    capabilities: dict[str, Any] = {"output_formats": ["embedding"], "input_modalities": ["text"]}
    width = _json_int(directory / "1_Pooling" / "config.json", "word_embedding_dimension")
    if width is None:
        width = _json_int(directory / "config.json", "hidden_size")
    window = _json_int(directory / "sentence_bert_config.json", "max_seq_length")
    if width is not None:
        capabilities["embedding_dimensions"] = width
    if window is not None:
        capabilities["max_context_tokens"] = window
    return capabilities


def _json_int(path: Path, key: str) -> int | None:
    """An integer field of a small JSON file; None when it or the file is not there."""
    try:
        value = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
