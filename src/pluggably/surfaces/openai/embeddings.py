"""OpenAI's ``POST /embeddings`` (API.md §8), under /openai/v1 and /v1: each request
becomes a native embedding request (modality ``embedding``, ``input.texts``,
``parameters.dimensions``) through the same service as /v1/generate (credentials,
routing, fallbacks, limits, records), answered as OpenAI's ``CreateEmbeddingResponse``.

``encoding_format: base64`` answers each vector as its little-endian float32 bytes,
base64-encoded: what the openai SDKs ask for by default and decode with numpy's
``frombuffer(..., dtype="float32")``. Token-id arrays (LangChain's OpenAIEmbeddings
sends them unless ``check_embedding_ctx_length=False``) are refused with a 400 naming
that setting: only OpenAI's own tokenizer could turn them back into the text, and the
models here (local ones above all) tokenize text themselves."""

from __future__ import annotations

import base64
import struct

from fastapi import APIRouter
from pydantic import ValidationError

from pluggably.api.deps import Generation, Writer
from pluggably.generation.schemas import GenerateRequest, GenerateResponse
from pluggably.surfaces.bad_input import invalid, validation_details
from pluggably.surfaces.openai.embedding_shapes import (
    MAX_INPUTS,
    OpenAIEmbedding,
    OpenAIEmbeddingList,
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingUsage,
)
from pluggably.surfaces.openai.fields import field_error
from pluggably.surfaces.openai.routing import OPENAI_ERRORS, OpenAIRoute
from pluggably.surfaces.openai.translate import PARAM_NAMES

router = APIRouter(tags=["openai-compatible"], route_class=OpenAIRoute, responses=OPENAI_ERRORS)

IDS_REFUSED = (
    "Token-id arrays are not supported here; send the texts themselves (LangChain's "
    "OpenAIEmbeddings: check_embedding_ctx_length=False)."
)


@router.post("/embeddings", response_model=OpenAIEmbeddingList)
async def create_embeddings(
    body: OpenAIEmbeddingRequest, principal: Writer, service: Generation
) -> OpenAIEmbeddingList:
    """Embeddings from any embedding model /v1/generate serves: local ones by registry
    id (``bundled/all-minilm-l6-v2``), provider ones as ``provider:model``
    (``openai:text-embedding-3-small``, ``google:gemini-embedding-001``) or by their
    vendor's name (``text-embedding-3-small``). Vectors are unit length; ``dimensions``
    keeps the leading ones (renormalized)."""
    plan = await service.prepare(principal, embedding_request(body))
    result = await service.generate(plan, wait=True)
    assert isinstance(result, GenerateResponse)  # wait=True never answers 202
    return embedding_list(result, base64_format=body.encoding_format == "base64")


def texts_of(body: OpenAIEmbeddingRequest) -> list[str]:
    """The texts of ``input``: one string or a list of them, none empty."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise field_error(["input"], "'input' is empty: send a text or a list of texts.")
    if not all(isinstance(text, str) for text in texts):
        raise field_error(["input"], IDS_REFUSED)
    if len(texts) > MAX_INPUTS:
        raise field_error(["input"], f"'input' holds {len(texts)} texts; at most {MAX_INPUTS}.")
    for index, text in enumerate(texts):
        if not text:
            raise field_error(["input", index], "Each text of 'input' must be non-empty.")
    return [str(text) for text in texts]


def embedding_request(body: OpenAIEmbeddingRequest) -> GenerateRequest:
    parameters = {"dimensions": body.dimensions} if body.dimensions is not None else {}
    fields = {
        "model": body.model,
        "modality": "embedding",
        "input": {"texts": texts_of(body)},
        "parameters": parameters,
        "wait": True,
    }
    try:
        return GenerateRequest.model_validate(fields)
    except ValidationError as exc:  # a limit of the native request
        raise invalid(validation_details(exc.errors()), names=PARAM_NAMES) from None


def embedding_list(response: GenerateResponse, *, base64_format: bool) -> OpenAIEmbeddingList:
    vectors = response.output.embeddings or []
    data = [
        OpenAIEmbedding(index=i, embedding=_float32_base64(v) if base64_format else v)
        for i, v in enumerate(vectors)
    ]
    prompt = response.usage.prompt_tokens if response.usage is not None else 0
    return OpenAIEmbeddingList(
        data=data,
        model=response.model,
        usage=OpenAIEmbeddingUsage(prompt_tokens=prompt, total_tokens=prompt),
    )


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
