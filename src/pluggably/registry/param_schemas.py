"""Default parameter JSON Schemas per modality (and runtime format), the starting
version of every model's schema; a model may override it with a new version."""

from __future__ import annotations

import copy
from typing import Any

SEED = {
    "type": "integer",
    "minimum": 0,
    "maximum": 2**32 - 1,
    "description": "Random seed for reproducible output.",
    "examples": [42],
}

# Stop sequences: the gateway applies them itself wherever an engine takes fewer
# (OpenAI and most OpenAI-compatible vendors take 4, Gemini 5; llama.cpp and Anthropic
# set no small limit), so the bound is this server's: each is looked for after every
# token, and tools send many (Continue's autocomplete sends 10-20). 64 leaves room for
# those and keeps the per-token check cheap.
MAX_STOP_SEQUENCES = 64
MAX_STOP_LENGTH = 1000
# The most tokens an answer may ask for where the model's window is not known: far
# beyond what any model writes, and it keeps 10**12 from being forwarded upstream.
MAX_TOKENS_CEILING = 1_000_000

TEXT: dict[str, Any] = {
    "temperature": {
        "type": "number",
        "minimum": 0,
        "maximum": 2,
        "default": 0.7,
        "description": "Sampling temperature; 0 is greedy.",
        "examples": [0.2],
    },
    "max_tokens": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_TOKENS_CEILING,
        "default": 512,
        "description": "Most tokens to generate.",
        "examples": [256],
    },
    "top_p": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1,
        "default": 1.0,
        "description": "Nucleus sampling: keep the smallest token set with this mass.",
    },
    "stop": {
        "description": f"Up to {MAX_STOP_SEQUENCES} sequences (each at most "
        f"{MAX_STOP_LENGTH} characters) that end generation; the answer stops before "
        "the first one it would contain.",
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_STOP_LENGTH},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_STOP_LENGTH},
                "maxItems": MAX_STOP_SEQUENCES,
            },
        ],
        "examples": [["\n\n"]],
    },
    "seed": SEED,
    "format": {
        "type": "string",
        "enum": ["text", "json"],
        "default": "text",
        "description": "Answer as free text or as one JSON value.",
    },
}

IMAGE: dict[str, Any] = {
    "width": {"type": "integer", "minimum": 64, "maximum": 2048, "multipleOf": 8, "default": 512},
    "height": {"type": "integer", "minimum": 64, "maximum": 2048, "multipleOf": 8, "default": 512},
    "num_inference_steps": {
        "type": "integer",
        "minimum": 1,
        "maximum": 150,
        "default": 25,
        "description": "Denoising steps: more is slower and usually finer.",
    },
    "guidance_scale": {
        "type": "number",
        "minimum": 0,
        "maximum": 30,
        "default": 7.5,
        "description": "How strictly to follow the prompt.",
    },
    "negative_prompt": {"type": "string", "maxLength": 2000, "description": "What to avoid."},
    "num_images": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1},
    "strength": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1,
        "default": 0.8,
        "description": "Image-to-image: how far to move from the input image.",
    },
    "seed": SEED,
}

THREE_D: dict[str, Any] = {
    "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 256, "default": 64},
    "guidance_scale": {"type": "number", "minimum": 0, "maximum": 30, "default": 15.0},
    "output_format": {
        "type": "string",
        "enum": ["obj", "glb", "ply"],
        "default": "glb",
        "description": "Mesh file format.",
    },
    "seed": SEED,
}

# Far beyond any embedding model's width; a model of known width caps it at that.
MAX_DIMENSIONS = 65536

EMBEDDING: dict[str, Any] = {
    "dimensions": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_DIMENSIONS,
        "description": "Keep the first this many dimensions of each vector (then "
        "renormalized when 'normalize'); default: all of them.",
        "examples": [256],
    },
    "normalize": {
        "type": "boolean",
        "default": True,
        "description": "Scale each vector to unit length (L2), so a dot product is the "
        "cosine similarity.",
    },
}

_BY_MODALITY = {"text": TEXT, "image": IMAGE, "3d": THREE_D, "embedding": EMBEDDING}


def default_schema(
    model_id: str,
    modality: str,
    max_context_tokens: int | None = None,
    embedding_dimensions: int | None = None,
) -> dict[str, Any]:
    properties = copy.deepcopy(_BY_MODALITY[modality])
    if modality == "text" and max_context_tokens:
        properties["max_tokens"]["maximum"] = min(max_context_tokens, MAX_TOKENS_CEILING)
    if modality == "embedding" and embedding_dimensions:
        properties["dimensions"]["maximum"] = embedding_dimensions
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Parameters of {model_id}",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
