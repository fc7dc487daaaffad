"""OpenAI's Responses API (API.md §8): create (JSON or its event stream), retrieve,
delete and list input items. Served under /openai/v1 and /v1 (app.py).

Each request becomes a native /v1/generate request through the same service as chat
completions. A stored response (``store``, by default) belongs to its user and carries
the items its request added; ``previous_response_id`` continues its chain. Another
user's response is not found (404; 400 for ``previous_response_id``, as OpenAI says)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from pluggably.api.deps import DbSession, Generation, Reader, Writer
from pluggably.api.deps import Responses as Store
from pluggably.api.sse import Opened, opening, sse_response
from pluggably.generation.plan import Plan
from pluggably.generation.schemas import GenerateResponse
from pluggably.generation.service import GenerationService
from pluggably.surfaces.openai.responses_input import Item, refuse_duplicates, stored_items
from pluggably.surfaces.openai.responses_shapes import ResponsesDeleted, ResponsesRequest
from pluggably.surfaces.openai.responses_stream import ResponsesEventWriter, Sequencer
from pluggably.surfaces.openai.responses_translate import (
    ResponseHead,
    native_request,
    response_object,
)
from pluggably.surfaces.openai.routing import OPENAI_ERRORS, OpenAIRoute
from pluggably.surfaces.openai.translate import error_body

router = APIRouter(tags=["openai-compatible"], route_class=OpenAIRoute, responses=OPENAI_ERRORS)

Save = Callable[[Item], Awaitable[None]]

_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A response object; with `stream` an SSE stream of `event:`/`data:` "
        "pairs (response.created, response.in_progress, output items and their deltas, "
        "response.completed or response.incomplete; response.failed on a failure after "
        "the start), each with its sequence_number, and no [DONE].",
        "content": {"application/json": {}, "text/event-stream": {}},
    }
}


@router.post("/responses", responses=_RESPONSE_DOC)
async def create_response(
    body: ResponsesRequest, principal: Writer, service: Generation, store: Store
) -> Response:
    """A response to ``input`` (a string, or message, function_call,
    function_call_output and reasoning items), continuing ``previous_response_id``,
    with ``instructions``, function ``tools``, ``text.format`` (json_object,
    json_schema), ``max_output_tokens``, ``temperature``, ``top_p`` and
    ``reasoning.effort``. Stored unless ``store`` is false."""
    items = stored_items(body.input)
    history = []
    if body.previous_response_id is not None:
        history = await store.history(principal.user_id, body.previous_response_id)
    refuse_duplicates(history, items)
    plan = await service.prepare(principal, native_request(body, history + items))
    head = ResponseHead.of(body, plan.request_id)
    save: Save | None = None
    if body.store is not False:
        save = partial(
            store.save, principal.user_id, previous_id=body.previous_response_id, input_items=items
        )
    if body.stream:
        return await _stream(service, plan, ResponsesEventWriter(head), save)
    result = await service.generate(plan, wait=True)
    assert isinstance(result, GenerateResponse)  # wait=True never answers 202
    answer = response_object(head, result)
    if save is not None:
        await save(answer)
    return JSONResponse(answer)


@router.get("/responses/{response_id}")
async def retrieve_response(
    response_id: str, principal: Reader, session: DbSession, store: Store
) -> JSONResponse:
    """A stored response of the caller's, as it was answered."""
    return JSONResponse(await store.get(session, principal.user_id, response_id))


@router.delete("/responses/{response_id}", response_model=ResponsesDeleted)
async def delete_response(
    response_id: str, principal: Writer, session: DbSession, store: Store
) -> ResponsesDeleted:
    """Delete a stored response of the caller's. Responses that continued it carry
    on with the rest of their conversation."""
    await store.delete(session, principal.user_id, response_id)
    return ResponsesDeleted(id=response_id)


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    principal: Reader,
    session: DbSession,
    store: Store,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> JSONResponse:
    """The items that formed the response's input: the conversation it continued
    (the input and output items of each earlier response of its chain), then its own
    request's items; newest first unless ``order=asc``, ``limit`` a page, ``after``
    an item id."""
    items = await store.input_items(session, principal.user_id, response_id)
    if order == "desc":
        items.reverse()
    start = 0
    if after is not None:
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), len(items))
    page = items[start : start + limit]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(items),
        }
    )


async def _stream(
    service: GenerationService, plan: Plan, writer: ResponsesEventWriter, save: Save | None
) -> Response:
    """The SSE layer of the native route with the Responses API's events. A failure
    before the first event is a plain HTTP error with its real status, as for chat."""
    opened, refused = await opening(service.stream(plan), error_body)
    if opened is None:
        assert refused is not None
        return refused
    events = _relay(opened, writer, save)
    return sse_response(events, fmt=Sequencer().format(), source=opened)


async def _relay(
    opened: Opened, writer: ResponsesEventWriter, save: Save | None
) -> AsyncIterator[dict[str, Any]]:
    """The native stream as the Responses API's events; a complete response is
    stored before its last event goes out, so the client can continue it at once."""
    try:
        async for event in opened:
            out = writer.feed(event)
            if writer.final is not None and save is not None:
                await save(writer.final)
                save = None
            for item in out:
                yield item
    finally:
        await opened.aclose()
