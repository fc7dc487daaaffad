"""Anthropic-compatible surface under /anthropic/v1 (API.md §8): ``POST /messages``,
plain and streamed, over the native generation (same routing, queueing, fallbacks,
records and metrics), and ``POST /messages/count_tokens``. Base URL for the Anthropic
SDKs: ``http://host:8080/anthropic``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from pluggably.api.deps import Generation, TokenCounter, Writer
from pluggably.api.errors import ErrorFormat
from pluggably.api.sse import Opened, SSEFormat, opening, sse_response
from pluggably.errors import InvalidJson, InvalidParameter, ValidationFailed
from pluggably.generation.plan import Plan
from pluggably.generation.schemas import GenerateResponse
from pluggably.generation.service import GenerationService
from pluggably.observability.context import current
from pluggably.surfaces.anthropic.answer import message_id, message_of
from pluggably.surfaces.anthropic.envelope import (
    error_body,
    parameter_problems,
    problems,
    status_of,
)
from pluggably.surfaces.anthropic.request import generate_request, native
from pluggably.surfaces.anthropic.shapes import (
    AnthropicCountTokensRequest,
    AnthropicError,
    AnthropicMessage,
    AnthropicMessagesRequest,
    AnthropicTokenCount,
)
from pluggably.surfaces.anthropic.stream import StreamTranslator

PREFIX = "/anthropic/"


def _render(status: int, _code: str, message: str, _details: Any) -> dict[str, Any]:
    ctx = current()
    return error_body(status, message, ctx.request_id if ctx else None)


# Everything under /anthropic/ answers errors in Anthropic's shape (create_app hands
# this to the app's error handlers).
ERROR_FORMAT: tuple[str, ErrorFormat] = (PREFIX, _render)


class _AnthropicRoute(APIRoute):
    """Anthropic answers a malformed request with 400 ``invalid_request_error`` (the SDKs
    raise ``BadRequestError``), where the native API says 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if any(e.get("type") == "json_invalid" for e in exc.errors()):
                    raise InvalidJson() from None
                raise InvalidParameter(problems(exc.errors())) from None
            except ValidationFailed as exc:  # parameters against the model's schema
                raise InvalidParameter(parameter_problems(exc.details)) from None

        return handle


router = APIRouter(
    prefix="/anthropic/v1", tags=["anthropic-compatible"], route_class=_AnthropicRoute
)

_ERRORS = {
    400: "invalid_request_error: malformed body, missing max_tokens, bad parameter",
    401: "authentication_error: missing or invalid credential",
    403: "permission_error: the credential lacks the write scope",
    404: "not_found_error: unknown model",
    413: "request_too_large",
    422: "invalid_request_error: NUL characters in the request",
    429: "rate_limit_error: this gateway's or the upstream's limit; Retry-After set",
    500: "api_error",
    502: "api_error: the upstream answered with an error",
    503: "overloaded_error: backend unavailable, queue full, model loading",
    504: "timeout_error",
}
MESSAGES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "The message, or with stream=true Anthropic's named SSE events: "
        "message_start, then per content block content_block_start (the first followed "
        "by ping), content_block_delta (thinking_delta and signature_delta, text_delta, "
        "input_json_delta)…, content_block_stop; message_delta (stop_reason, usage), "
        "message_stop; or error.",
    },
    **{status: {"model": AnthropicError, "description": text} for status, text in _ERRORS.items()},
}


@router.post(
    "/messages",
    response_model=AnthropicMessage,
    responses=MESSAGES_RESPONSES,
    summary="Create a message (Anthropic Messages API)",
)
async def create_message(
    body: AnthropicMessagesRequest, principal: Writer, service: Generation
) -> AnthropicMessage | Response:
    """Answered by the model the native route would pick for ``model`` (registry id,
    ``provider:model`` or a bare vendor model name). A busy local model is waited for,
    silently; credentials go in ``x-api-key`` or ``Authorization: Bearer``."""
    plan = await service.prepare(principal, generate_request(body))
    if body.stream:
        return await _stream(service, plan)
    result = await service.generate(plan, wait=True)
    assert isinstance(result, GenerateResponse)  # wait=True never answers 202
    return message_of(result)


ESTIMATE_HEADER = "X-Pluggably-Token-Estimate"


@router.post(
    "/messages/count_tokens",
    response_model=AnthropicTokenCount,
    responses={
        200: {
            "description": f"The input tokens. With the header `{ESTIMATE_HEADER}: true` an "
            "estimate: no tokenizer of the model's at hand."
        },
        **{s: r for s, r in MESSAGES_RESPONSES.items() if s != 200},
    },
    summary="Count a message's input tokens (Anthropic Messages API)",
)
async def count_tokens(
    body: AnthropicCountTokensRequest, principal: Writer, counting: TokenCounter, response: Response
) -> AnthropicTokenCount:
    """The tokens of the messages, system prompt and tools for the model ``model``
    routes to: the local model's own tokenizer and template, Anthropic's count for
    Anthropic's models, else an estimate flagged by ``X-Pluggably-Token-Estimate``."""
    counted = await counting.count(principal, native(body))
    if counted.estimated:
        response.headers[ESTIMATE_HEADER] = "true"
    return AnthropicTokenCount(input_tokens=counted.tokens)


async def _stream(service: GenerationService, plan: Plan) -> Response:
    """Upstream failures that happen before the first token (every fallback tried)
    become a plain HTTP error (its status, ``Retry-After`` where set), which the SDKs
    retry or raise as they would for Anthropic; later ones are an ``error`` event."""
    opened, refused = await opening(service.stream(plan), _render)
    if opened is None:
        assert refused is not None
        return refused
    translator = StreamTranslator(message_id(plan.request_id))
    return sse_response(_events(plan, translator, opened), fmt=_SSE, source=opened)


async def _events(
    plan: Plan, translator: StreamTranslator, opened: Opened
) -> AsyncIterator[dict[str, Any]]:
    try:
        async for event in opened:
            for shown in translator.events(event):
                yield shown
        if not translator.finished:  # the native stream ends quietly only when cancelled
            yield translator.error("cancelled", "The request was cancelled.")
    finally:
        await opened.aclose()


def _named_event(data: dict[str, Any]) -> bytes:
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# Anthropic's named events (``event: <type>`` lines, which the SDKs dispatch on), the
# SSE layer's own failures as Anthropic error events, and no ``[DONE]``.
_SSE = SSEFormat(
    encode=_named_event,
    error=lambda code, message: error_body(status_of(code), message),
    done=b"",
)
