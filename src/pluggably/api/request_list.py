"""GET /v1/requests: the caller's requests, newest first (administrators: anyone's), for
the console's requests page. The routes of one request (``/v1/requests/{id}``…) are in
generate.py; a path parameter never matches the empty segment, so the two never clash."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pluggably.api.deps import DbSession, Generation, Reader
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.generation.list_schemas import RequestList, RequestQuery
from pluggably.generation.listing import RequestListing

router = APIRouter(prefix="/v1/requests", tags=["requests"], responses=AUTH_ERRORS)
LIST_ERRORS = error_responses(403, 404, 422)
LIST_ERRORS[403]["description"] = (
    "`forbidden`: another user's requests (`user_id`, or `*` for everyone's) asked by a "
    "caller who is not an administrator (a role matter, so 403 rather than 404), or a "
    "credential without the read scope"
)
LIST_ERRORS[404]["description"] = "`not_found`: an administrator named a user that does not exist"
LIST_ERRORS[422]["description"] = (
    "`validation_error`: a filter out of range (`limit` is 1 to 200) or a `cursor` that is "
    "not a `next_cursor` of this list"
)


@router.get("", response_model=RequestList, responses=LIST_ERRORS)
async def list_requests(
    principal: Reader,
    session: DbSession,
    generation: Generation,
    query: Annotated[RequestQuery, Query()],
) -> RequestList:
    """Request records newest first, without their responses, ``limit`` per page
    (default 50) and ``next_cursor`` to page on; filtered by ``status`` and ``model``.
    Your own requests; an administrator may list any user's (``user_id``) or everyone's
    (``user_id=*``). A request waiting in a local model's queue is ``queued`` when it
    waits on the server answering (on another replica it shows as ``running``)."""
    listing = RequestListing(generation.outcomes.records, generation.live)
    return await listing.page(session, principal, query)
