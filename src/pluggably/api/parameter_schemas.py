"""GET /v1/schema: a model's parameter schema, or an index of the request format."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pluggably.api.deps import DbSession, Reader, Registry
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.registry.schemas import ParameterSchema

router = APIRouter(tags=["models"], responses=AUTH_ERRORS)

INDEX: dict[str, Any] = {
    "request": {
        "model": "registry id, 'provider:model', or 'auto'/omitted for automatic selection",
        "provider": "restrict to one provider (openai, anthropic, google, azure, xai, deepseek, "
        "groq, huggingface, local, or a configured OpenAI-compatible endpoint)",
        "modality": "text | image | 3d | embedding; inferred from the model, else from "
        "inputs (input.texts means embedding)",
        "input": "prompt or messages[], images[] (base64/data URLs), mesh (base64); "
        "texts[] for embeddings",
        "parameters": "validated against the model's schema: GET /v1/schema?model=<id>",
        "session_id": "continue a conversation (see /v1/sessions)",
        "selection_mode": "auto | free_only | commercial_only | model",
        "stream": "SSE for text (ignored for image, 3d and embedding)",
    },
    "modalities": ["text", "image", "3d", "embedding"],
    "model_selection": [
        "an explicit model id wins",
        "else the user's preferred_model",
        "else the default model of the modality (POST /v1/models/{id}/default)",
        "else the first available model of the modality",
    ],
}


@router.get(
    "/v1/schema",
    response_model=ParameterSchema | dict[str, Any],
    responses=error_responses(404),
)
async def get_schema(
    _principal: Reader,
    session: DbSession,
    registry: Registry,
    model: Annotated[str | None, Query(max_length=300)] = None,
) -> ParameterSchema | dict[str, Any]:
    """With ``model``: its parameter JSON Schema (versioned); without: the request index."""
    if model is None:
        return INDEX
    return await registry.schema(session, model)
