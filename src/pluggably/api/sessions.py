"""The caller's sessions (API.md §5). Generation in a session (``…/generate``,
``…/regenerate``) has its own module."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from pluggably.api.deps import Artifacts, DbSession, Reader, Reclaim, Sessions, Writer
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.sessions.schemas import (
    SessionCreate,
    SessionDetail,
    SessionInfo,
    SessionList,
    SessionQuery,
    SessionUpdate,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=AUTH_ERRORS)
NOT_FOUND = error_responses(404)


STORAGE_FULL = error_responses(409)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SessionInfo, responses=STORAGE_FULL
)
async def create_session(
    principal: Writer,
    session: DbSession,
    sessions: Sessions,
    body: Annotated[SessionCreate | None, Body()] = None,
) -> SessionInfo:
    """Start a session. The body is optional (existing clients send none, or ``null``).
    Without a title it takes one from its first prompt. 409 ``session_storage_full``
    when the caller's sessions already hold all they may."""
    chat = await sessions.create(session, principal.user_id, body or SessionCreate())
    return SessionInfo.model_validate(chat)


@router.get("", response_model=SessionList)
async def list_sessions(
    principal: Reader,
    session: DbSession,
    sessions: Sessions,
    query: Annotated[SessionQuery, Query()],
) -> SessionList:
    """The caller's sessions, newest activity first; ``next_cursor`` pages on."""
    return await sessions.page(session, principal.user_id, query)


@router.get("/{session_id}", response_model=SessionDetail, responses=NOT_FOUND)
async def get_session(
    session_id: str,
    principal: Reader,
    session: DbSession,
    sessions: Sessions,
    artifacts: Artifacts,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=1000,
            description="The newest this many messages (default 100); fewer when their "
            "text passes the page's byte budget.",
        ),
    ] = None,
    before: Annotated[
        str | None,
        Query(max_length=40, description="Only messages older than this message id."),
    ] = None,
) -> SessionDetail:
    """The session with its newest messages, oldest first; artifact links are freshly
    signed. A page holds at most ``limit`` messages (100 by default) and stops at a
    byte budget; ``next_before`` is set when older ones remain: pass it as ``before``."""
    return await sessions.detail(
        session, principal.user_id, session_id, artifacts, limit=limit, before=before
    )


@router.put("/{session_id}", response_model=SessionInfo, responses=NOT_FOUND | STORAGE_FULL)
async def update_session(
    session_id: str, body: SessionUpdate, principal: Writer, session: DbSession, sessions: Sessions
) -> SessionInfo:
    """Change the title and/or system prompt; fields not sent are kept. A title set
    here is never replaced by the automatic one; ``title: null`` removes it."""
    chat = await sessions.update(session, principal.user_id, session_id, body)
    return SessionInfo.model_validate(chat)


@router.patch("/{session_id}", response_model=SessionInfo, responses=NOT_FOUND | STORAGE_FULL)
async def patch_session(
    session_id: str, body: SessionUpdate, principal: Writer, session: DbSession, sessions: Sessions
) -> SessionInfo:
    """The same as PUT: only the fields sent change."""
    chat = await sessions.update(session, principal.user_id, session_id, body)
    return SessionInfo.model_validate(chat)


@router.delete("/{session_id}", response_model=SessionInfo, responses=NOT_FOUND)
async def delete_session(
    session_id: str,
    principal: Writer,
    session: DbSession,
    sessions: Sessions,
    reclaim: Reclaim,
    purge: Annotated[
        bool, Query(description="Delete the session and its messages instead of closing it.")
    ] = False,
) -> SessionInfo:
    """Close the session: it keeps its messages and state tokens but takes no new
    turns; the answer is the closed session. With ``purge=true`` it is deleted with its
    messages, and the answer is the session as it was last, ``closed`` (clients parse
    a Session from every answer of this route)."""
    if purge:
        last = await sessions.purge(session, principal.user_id, session_id)
        reclaim()
        return last
    return SessionInfo.model_validate(await sessions.close(session, principal.user_id, session_id))


@router.post("/{session_id}/reset", response_model=SessionInfo, responses=error_responses(400, 404))
async def reset_session(
    session_id: str,
    principal: Writer,
    session: DbSession,
    sessions: Sessions,
    reclaim: Reclaim,
) -> SessionInfo:
    """Clear the messages and state tokens; keep the title and system prompt.
    A closed session keeps its history: 400 ``session_closed``."""
    chat = await sessions.reset(session, principal.user_id, session_id)
    reclaim()
    return SessionInfo.model_validate(chat)
