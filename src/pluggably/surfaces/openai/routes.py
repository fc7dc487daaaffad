"""OpenAI-compatible surface under /openai/v1 (API.md §8): chat completions (JSON and
SSE), legacy completions, image generations and the model list, for the official
SDKs and the tools built on them.

Each request becomes a /v1/generate request and goes through the same service:
same credentials, routing, fallbacks, request records and metrics. OpenAI clients
cannot follow a 202, so a request for a busy local model waits for its turn (a
stream says nothing but ``: keep-alive`` meanwhile). Errors come in OpenAI's shape,
bad input as 400 like OpenAI's own API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response

from pluggably.api.deps import (
    Artifacts,
    Catalog,
    DbSession,
    Generation,
    Reader,
    Writer,
)
from pluggably.api.sse import Opened, SSEFormat, opening, sse_response
from pluggably.catalog.service import Usable
from pluggably.errors import ModelNotFound
from pluggably.generation.plan import Plan
from pluggably.generation.schemas import GenerateResponse
from pluggably.generation.service import GenerationService
from pluggably.surfaces.openai.images import image_urls, images_b64
from pluggably.surfaces.openai.routing import OPENAI_ERRORS, OpenAIRoute
from pluggably.surfaces.openai.shapes import (
    OpenAIChatCompletion,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIImageData,
    OpenAIImageGenerationRequest,
    OpenAIImagesResponse,
    OpenAIModelObject,
    OpenAIModelPage,
    OpenAITextCompletion,
)
from pluggably.surfaces.openai.translate import (
    ChunkWriter,
    chat_completion,
    chat_request,
    completion_prompt,
    completion_request,
    error_body,
    image_request,
    stream_error,
    text_completion,
)

# The SSE layer's own failures (a cancel, a bug below) as OpenAI error chunks.
_SSE = SSEFormat(error=stream_error)


router = APIRouter(tags=["openai-compatible"], route_class=OpenAIRoute, responses=OPENAI_ERRORS)
# The model list answers only under /openai/v1: /v1/models is the native catalog.
models_router = APIRouter(
    tags=["openai-compatible"], route_class=OpenAIRoute, responses=OPENAI_ERRORS
)


def _streamed(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"text/event-stream": {}}, "description": description}}


@router.post(
    "/chat/completions",
    response_model=OpenAIChatCompletion,
    responses=_streamed(
        "A chat.completion, or with `stream` an SSE stream of chat.completion.chunk objects "
        "(role, content, tool_calls and reasoning_content deltas, finish_reason, usage with "
        "`stream_options.include_usage`; "
        "an error object on a failure after the first chunk), then `[DONE]`. A stream "
        "that fails before its first chunk answers the error's own status instead."
    ),
)
async def chat_completions(
    body: OpenAIChatCompletionRequest, principal: Writer, service: Generation
) -> OpenAIChatCompletion | Response:
    """OpenAI chat completions over any model /v1/generate serves (``local/…`` registry
    ids, ``provider:model``, vendor names, ``auto``). Text and ``image_url`` (data: URL)
    parts; function ``tools`` (and the legacy ``functions``), ``tool_choice``,
    ``parallel_tool_calls``, tool results; ``response_format`` ``json_object`` and
    ``json_schema``; ``reasoning_effort``, and the model's reasoning as
    ``reasoning_content``; ``n`` must be 1."""
    plan = await service.prepare(principal, chat_request(body))
    legacy = bool(body.functions)  # the call answers as the legacy function_call
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        writer = ChunkWriter(
            "chat",
            plan.request_id,
            include_usage=include_usage,
            offers_tools=bool(body.tools or body.functions),
            legacy=legacy,
        )
        return await _stream(service, plan, writer)
    return chat_completion(await _answer(service, plan), legacy=legacy)


@router.post(
    "/completions",
    response_model=OpenAITextCompletion,
    responses=_streamed(
        "A text_completion, or with `stream` SSE chunks, then `[DONE]` (a failure before "
        "the first chunk answers the error's own status)."
    ),
)
async def completions(
    body: OpenAICompletionRequest, principal: Writer, service: Generation
) -> OpenAITextCompletion | Response:
    """Legacy completions: one prompt in, its continuation out (``echo`` puts the prompt
    in front). The prompt goes through the same path as a one-turn chat."""
    native = completion_request(body)
    echo = completion_prompt(body) if body.echo else None
    plan = await service.prepare(principal, native)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        writer = ChunkWriter("text", plan.request_id, include_usage=include_usage, echo=echo)
        return await _stream(service, plan, writer)
    return text_completion(await _answer(service, plan), echo)


@router.post(
    "/images/generations", response_model=OpenAIImagesResponse, response_model_exclude_none=True
)
async def images_generations(
    body: OpenAIImageGenerationRequest,
    principal: Writer,
    service: Generation,
    session: DbSession,
    artifacts: Artifacts,
    request: Request,
) -> OpenAIImagesResponse:
    """Images from any image model (``openai:dall-e-3``, local diffusers models, …).
    ``size`` is ``WxH``; ``response_format`` ``url`` answers signed artifact links
    (default, except for gpt-image models), ``b64_json`` the PNG inline."""
    plan = await service.prepare(principal, image_request(body))
    response = await _answer(service, plan)
    fmt = body.response_format or ("b64_json" if "gpt-image" in (body.model or "") else "url")
    if fmt == "b64_json":
        data = [
            OpenAIImageData(b64_json=b64) for b64 in await images_b64(session, artifacts, response)
        ]
    else:
        urls = await image_urls(session, artifacts, principal, response)
        data = [OpenAIImageData(url=_absolute(request, url)) for url in urls]
    return OpenAIImagesResponse(created=int(time.time()), data=data)


@models_router.get("/models", response_model=OpenAIModelPage)
async def list_models(principal: Reader, session: DbSession, catalog: Catalog) -> OpenAIModelPage:
    """The models this caller can use: registry models, then the provider models their
    credentials reach (``provider:model``), in OpenAI's list shape."""
    return OpenAIModelPage(data=_models(await catalog.usable(session, principal)))


@router.get("/models/{model_id:path}", response_model=OpenAIModelObject)
async def retrieve_model(
    model_id: str, principal: Reader, session: DbSession, catalog: Catalog
) -> OpenAIModelObject:
    for model in _models(await catalog.usable(session, principal)):
        if model.id == model_id:
            return model
    raise ModelNotFound(f"The model '{model_id}' does not exist or you do not have access to it.")


# helpers
async def _answer(service: GenerationService, plan: Plan) -> GenerateResponse:
    result = await service.generate(plan, wait=True)
    assert isinstance(result, GenerateResponse)  # wait=True never answers 202
    return result


async def _stream(service: GenerationService, plan: Plan, writer: ChunkWriter) -> Response:
    """The SSE layer of the native route (keep-alives, disconnects), with OpenAI chunks.
    A failure before the first frame (every candidate tried) is a plain HTTP error with
    its real status and ``Retry-After``, which the SDKs retry or raise as they would for
    OpenAI; a failure after it is an error chunk."""
    opened, refused = await opening(service.stream(plan), error_body)
    if opened is None:
        assert refused is not None
        return refused
    return sse_response(_relay(plan, opened, writer), fmt=_SSE, source=opened)


async def _relay(plan: Plan, opened: Opened, writer: ChunkWriter) -> AsyncIterator[dict[str, Any]]:
    """The native stream as OpenAI chunks."""
    try:
        async for event in opened:
            for chunk in writer.feed(event):
                yield chunk
    finally:
        await opened.aclose()


def _absolute(request: Request, url: str) -> str:
    """Artifact links are root-relative without a public base URL; OpenAI clients
    fetch them as they are, so they get this server's address in front."""
    return f"{str(request.base_url).rstrip('/')}{url}" if url.startswith("/") else url


def _models(usable: list[Usable]) -> list[OpenAIModelObject]:
    return [
        OpenAIModelObject(id=m.id, created=int(m.created_at.timestamp()), owned_by=m.provider)
        for m in usable
    ]
