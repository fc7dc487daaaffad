"""Generation inside a session (API.md §5): a new turn, or the last user turn answered
again. Same responses as POST /v1/generate (JSON, SSE with ``stream``, 202 queued)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from pluggably.api.deps import Generation, Writer
from pluggably.api.generate import GENERATE_RESPONSES, respond
from pluggably.api.schemas import AUTH_ERRORS
from pluggably.errors import InvalidParameter
from pluggably.generation.schemas import (
    GenerateInput,
    GenerateRequest,
    GenerateResponse,
    RegenerateRequest,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=AUTH_ERRORS)


@router.post(
    "/{session_id}/generate", response_model=GenerateResponse, responses=GENERATE_RESPONSES
)
async def session_generate(
    session_id: str, body: GenerateRequest, principal: Writer, service: Generation
) -> Response:
    """The next turn: the session's system prompt and history (trimmed oldest-first to
    the model's window) come before this request's input; the user turn is stored at
    once, the answer when it completes."""
    if body.session_id not in (None, session_id):
        raise InvalidParameter("session_id in the body differs from the session in the path.")
    body = body.model_copy(update={"session_id": session_id})
    plan = await service.prepare(principal, body)
    return await respond(service, plan, body.stream, body.wait)


@router.post(
    "/{session_id}/regenerate", response_model=GenerateResponse, responses=GENERATE_RESPONSES
)
async def session_regenerate(
    session_id: str, body: RegenerateRequest, principal: Writer, service: Generation
) -> Response:
    """Answer the last user message again, by default with the model that answered it.
    ``replace`` swaps the last answer only once the new one succeeded (a failure leaves
    the history as it was); ``append`` keeps both. Empty session: 400; closed: 400
    ``session_closed``."""
    request = GenerateRequest(
        model=body.model,
        input=GenerateInput(),  # the session's last user message is the input
        parameters=body.parameters,
        selection_mode=body.selection_mode,
        session_id=session_id,
        stream=body.stream,
        wait=body.wait,
        tools=body.tools,
        tool_choice=body.tool_choice,
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=body.response_format,
        reasoning=body.reasoning,
    )
    plan = await service.prepare(principal, request, regenerate=body.mode)
    return await respond(service, plan, body.stream, body.wait)
