"""``embed`` and the older ``embeddings`` over the native embedding generation
(modality ``embedding``, ``input.texts``): vectors of unit length, ``dimensions``
truncating them (then renormalized), real token counts."""

from __future__ import annotations

from pluggably.auth.principal import Principal
from pluggably.generation.schemas import GenerateResponse
from pluggably.generation.service import GenerationService
from pluggably.surfaces.ollama.shapes import OllamaEmbedAnswer
from pluggably.surfaces.ollama.translate import model_name, native


async def embeddings(
    service: GenerationService,
    principal: Principal,
    model: str,
    texts: list[str],
    dimensions: int | None,
) -> GenerateResponse:
    request = native(
        {
            "model": model_name(model),
            "modality": "embedding",
            "input": {"texts": texts},
            "parameters": {"dimensions": dimensions} if dimensions else {},
            "wait": True,
        }
    )
    result = await service.generate(await service.prepare(principal, request), wait=True)
    assert isinstance(result, GenerateResponse)  # wait=True never answers 202
    return result


def vectors(response: GenerateResponse) -> list[list[float]]:
    return response.output.embeddings or []


def embed_answer(model: str, response: GenerateResponse) -> OllamaEmbedAnswer:
    timings = response.timings
    return OllamaEmbedAnswer(
        model=model,
        embeddings=vectors(response),
        total_duration=int(timings.total_ms * 1_000_000),
        load_duration=int(timings.load_ms * 1_000_000),
        prompt_eval_count=response.usage.prompt_tokens if response.usage else 0,
    )
