"""POST /v1/generate (JSON or SSE) and the caller's request records."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from pluggably.api.deps import DbSession, Generation, Reader, Writer
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.api.sse import sse_response
from pluggably.generation.plan import Plan
from pluggably.generation.schemas import (
    Accepted,
    CancelResult,
    GenerateRequest,
    GenerateResponse,
    RequestDetails,
    RequestStatus,
)
from pluggably.generation.service import GenerationService

router = APIRouter(tags=["generation"], responses=AUTH_ERRORS)

GENERATE_ERRORS = error_responses(400, 404, 429, 502, 503, 504)


GENERATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **GENERATE_ERRORS,
    202: {"model": Accepted, "description": "Queued for a busy local model."},
    200: {
        "content": {"text/event-stream": {}},
        "description": "The response, or with stream=true an SSE stream of frames "
        "(queued, loading, model_selected, OpenAI-style text deltas, complete or error, "
        "then [DONE]).",
    },
}


@router.post("/v1/generate", response_model=GenerateResponse, responses=GENERATE_RESPONSES)
async def generate(body: GenerateRequest, principal: Writer, service: Generation) -> Response:
    """The answer (200), an SSE stream for text with ``stream``, or 202 ``queued`` when a
    local model is busy and ``wait`` is false (the request keeps its place and runs
    server-side: follow ``Location``)."""
    plan = await service.prepare(principal, body)
    return await respond(service, plan, body.stream, body.wait)


async def respond(service: GenerationService, plan: Plan, stream: bool, wait: bool) -> Response:
    if stream and plan.modality == "text":
        # Admission first: a refused stream is a plain HTTP error, never a 200.
        place = await service.admit(plan)
        return sse_response(service.stream(plan), source=place)
    result = await service.generate(plan, wait=wait)
    if isinstance(result, Accepted):
        return JSONResponse(
            result.model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/requests/{result.request_id}"},
        )
    # Serialized once here: handing the model back to FastAPI would validate it again
    # against response_model (the documented schema stays the same).
    return Response(result.model_dump_json(), media_type="application/json")


@router.get(
    "/v1/requests/{request_id}/status", response_model=RequestStatus, responses=error_responses(404)
)
async def request_status(
    request_id: str, principal: Reader, session: DbSession, generation: Generation
) -> RequestStatus:
    return (await generation.tracked(session, principal.user_id, request_id)).status()


@router.get(
    "/v1/requests/{request_id}", response_model=RequestDetails, responses=error_responses(404)
)
async def request_details(
    request_id: str, principal: Reader, session: DbSession, generation: Generation
) -> RequestDetails:
    """Status plus the generate response once completed."""
    return (await generation.tracked(session, principal.user_id, request_id)).details()


@router.post(
    "/v1/requests/{request_id}/cancel", response_model=CancelResult, responses=error_responses(404)
)
async def cancel_request(
    request_id: str, principal: Writer, session: DbSession, generation: Generation
) -> CancelResult:
    """Stop a running request; its partial text comes back. Finished requests stay as they are."""
    return await generation.cancel(session, principal.user_id, request_id)


@router.get(
    "/v1/requests/{request_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "status and text deltas"},
        **error_responses(404),
    },
)
async def request_events(
    request_id: str, principal: Reader, session: DbSession, generation: Generation
) -> StreamingResponse:
    """SSE: the status now; for a running request, its text deltas as they are produced
    and its final status; then ``[DONE]``."""
    tracked = await generation.tracked(session, principal.user_id, request_id)
    return sse_response(tracked.events())
