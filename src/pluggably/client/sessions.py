"""Sessions (API.md §5): the routes, and a handle bound to one session."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, Unpack

from pluggably.api.schemas_generate import RegenerateRequest
from pluggably.client.binding import (
    Bound,
    Handle,
    OnHandle,
    S,
    StreamOnHandle,
    operation,
    stream_operation,
)
from pluggably.client.calls import (
    UNSET,
    Call,
    Route,
    StreamCall,
    dump,
    fields,
    model,
    query_params,
)
from pluggably.client.events import StreamEvent, parse_event
from pluggably.client.generation import TurnOptions, as_events, generate_body, generated
from pluggably.client.transport import AsyncSender, SyncSender
from pluggably.generation.schemas import (
    Accepted,
    GenerateRequest,
    GenerateResponse,
    SelectionMode,
)
from pluggably.sessions.schemas import (
    MessageInfo,
    SessionCreate,
    SessionDetail,
    SessionInfo,
    SessionList,
    SessionStatus,
    SessionUpdate,
)

RegenerateMode = Literal["replace", "append"]


def _regenerate_body(
    model_id: str | None,
    parameters: Mapping[str, Any] | None,
    mode: RegenerateMode | None,
    wait: bool | None,
    stream: bool,
    selection_mode: SelectionMode | None = None,
) -> dict[str, Any]:
    given = {
        "model": model_id,
        "parameters": parameters,
        "mode": mode,
        "wait": wait,
        "selection_mode": selection_mode,
    }
    body = {k: dict(v) if isinstance(v, Mapping) else v for k, v in given.items() if v is not None}
    return dump(RegenerateRequest.model_validate({**body, "stream": stream}))


def _messages(response: Any) -> builtins.list[MessageInfo]:
    return SessionDetail.model_validate(response.json()).messages


class Sessions(Bound[S]):
    """The caller's sessions: ``client.sessions``. ``client.session(...)`` gives a
    handle bound to one."""

    @operation("POST", "/v1/sessions")
    def create(
        route: Route, *, title: str | None = None, system_prompt: str | None = None
    ) -> Call[SessionInfo]:
        """Start a session; without a title it takes one from its first prompt."""
        body = SessionCreate.model_validate(
            fields(
                title=UNSET if title is None else title,
                system_prompt=UNSET if system_prompt is None else system_prompt,
            )
        )
        return Call(route, route.url(), model(SessionInfo), body=dump(body))

    @operation("GET", "/v1/sessions/{session_id}")
    def get(
        route: Route, session_id: str, *, limit: int | None = None, before: str | None = None
    ) -> Call[SessionDetail]:
        """The session with its messages, oldest first (``limit``/``before`` page back)."""
        params = query_params(limit=limit, before=before)
        return Call(route, route.url(session_id=session_id), model(SessionDetail), params=params)

    @operation("GET", "/v1/sessions/{session_id}")
    def messages(
        route: Route, session_id: str, *, limit: int | None = None, before: str | None = None
    ) -> Call[builtins.list[MessageInfo]]:
        """Only the messages of ``get``."""
        params = query_params(limit=limit, before=before)
        return Call(route, route.url(session_id=session_id), _messages, params=params)

    @operation("PUT", "/v1/sessions/{session_id}")
    def update(
        route: Route,
        session_id: str,
        *,
        title: str | None = UNSET,
        system_prompt: str | None = UNSET,
    ) -> Call[SessionInfo]:
        """Change the fields given (``title=None`` removes the title)."""
        body = SessionUpdate.model_validate(fields(title=title, system_prompt=system_prompt))
        return Call(route, route.url(session_id=session_id), model(SessionInfo), body=dump(body))

    @operation("PATCH", "/v1/sessions/{session_id}")
    def patch(
        route: Route,
        session_id: str,
        *,
        title: str | None = UNSET,
        system_prompt: str | None = UNSET,
    ) -> Call[SessionInfo]:
        """The same as ``update``, sent as PATCH."""
        body = SessionUpdate.model_validate(fields(title=title, system_prompt=system_prompt))
        return Call(route, route.url(session_id=session_id), model(SessionInfo), body=dump(body))

    @operation("DELETE", "/v1/sessions/{session_id}")
    def close(route: Route, session_id: str, *, purge: bool = False) -> Call[SessionInfo]:
        """Close the session (history kept, no new turns): the closed session. ``purge``
        deletes it: the session as it was last, status ``closed``."""
        params = query_params(purge=purge or None)
        return Call(route, route.url(session_id=session_id), model(SessionInfo), params=params)

    @operation("POST", "/v1/sessions/{session_id}/reset")
    def reset(route: Route, session_id: str) -> Call[SessionInfo]:
        """Clear the messages and state tokens; keep the title and system prompt."""
        return Call(route, route.url(session_id=session_id), model(SessionInfo))

    @operation("POST", "/v1/sessions/{session_id}/generate")
    def generate(
        route: Route,
        /,
        session_id: str,
        prompt: str | GenerateRequest | None = None,
        **options: Unpack[TurnOptions],
    ) -> Call[GenerateResponse | Accepted]:
        """The next turn: the session's system prompt and history come first."""
        body = generate_body(prompt, options, stream=False)
        return Call(route, route.url(session_id=session_id), generated, body=body)

    @stream_operation("POST", "/v1/sessions/{session_id}/generate")
    def generate_stream(
        route: Route,
        /,
        session_id: str,
        prompt: str | GenerateRequest | None = None,
        **options: Unpack[TurnOptions],
    ) -> StreamCall[StreamEvent]:
        """The next turn as typed events (the stored turn has the full text)."""
        body = generate_body(prompt, options, stream=True)
        url = route.url(session_id=session_id)
        return StreamCall(route, url, parse_event, body=body, fallback=as_events)

    @operation("POST", "/v1/sessions/{session_id}/regenerate")
    def regenerate(
        route: Route,
        session_id: str,
        *,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        mode: RegenerateMode | None = None,
        wait: bool | None = None,
        selection_mode: SelectionMode | None = None,
    ) -> Call[GenerateResponse | Accepted]:
        """Answer the last user message again (by default with the model that answered
        it); ``replace`` (default) swaps the last answer once the new one succeeded."""
        body = _regenerate_body(model, parameters, mode, wait, False, selection_mode)
        return Call(route, route.url(session_id=session_id), generated, body=body)

    @stream_operation("POST", "/v1/sessions/{session_id}/regenerate")
    def regenerate_stream(
        route: Route,
        session_id: str,
        *,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        mode: RegenerateMode | None = None,
        selection_mode: SelectionMode | None = None,
    ) -> StreamCall[StreamEvent]:
        """``regenerate`` as typed events."""
        body = _regenerate_body(model, parameters, mode, None, True, selection_mode)
        url = route.url(session_id=session_id)
        return StreamCall(route, url, parse_event, body=body, fallback=as_events)

    @operation("GET", "/v1/sessions")
    def list(
        route: Route,
        *,
        status: SessionStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[SessionList]:
        """One page of the caller's sessions, newest activity first."""
        params = query_params(status=status, limit=limit, cursor=cursor)
        return Call(route, route.url(), model(SessionList), params=params)


class _SessionHandle(Handle[S]):
    """One session: every session operation with its id filled in."""

    def __init__(self, sender: S, info: SessionInfo) -> None:
        super().__init__(sender, info.id)
        self.info = info  # as it was when the handle was made

    generate = OnHandle(Sessions.generate)
    stream = StreamOnHandle(Sessions.generate_stream)
    regenerate = OnHandle(Sessions.regenerate)
    regenerate_stream = StreamOnHandle(Sessions.regenerate_stream)
    get = OnHandle(Sessions.get)
    messages = OnHandle(Sessions.messages)
    update = OnHandle(Sessions.update)
    reset = OnHandle(Sessions.reset)
    close = OnHandle(Sessions.close)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.info.title!r}>"


class SessionHandle(_SessionHandle[SyncSender]):
    """A session of the sync ``Client``; ``with`` closes it at the end."""

    def __enter__(self) -> SessionHandle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSessionHandle(_SessionHandle[AsyncSender]):
    """A session of the ``AsyncClient``; ``async with`` closes it at the end."""

    async def __aenter__(self) -> AsyncSessionHandle:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
