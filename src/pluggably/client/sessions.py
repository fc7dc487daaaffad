"""Sessions (API.md §5): the routes, and a handle bound to one session."""

from __future__ import annotations

import builtins
from collections.abc import Coroutine, Generator, Mapping
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, Unpack, overload

from pluggably.client.binding import (
    Bound,
    ClosedOnExit,
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
    RegenerateRequest,
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


# Messages per request while reading a whole history (the most the server gives).
HISTORY_PAGE = 1000
R_co = TypeVar("R_co", covariant=True)


class _ReadMessages(Protocol[R_co]):
    def __call__(
        self, session_id: str, *, limit: int | None = None, before: str | None = None
    ) -> R_co: ...


class _ReadOwnMessages(Protocol[R_co]):
    def __call__(self, *, limit: int | None = None, before: str | None = None) -> R_co: ...


def _page(session_id: str, limit: int | None, before: str | None) -> Call[SessionDetail]:
    return Sessions.get.call(session_id, limit=limit, before=before)


def _history(
    session_id: str, limit: int | None, before: str | None
) -> Generator[Call[SessionDetail], SessionDetail, builtins.list[MessageInfo]]:
    """The calls that read the messages, each sent by the caller's sender, which sends
    back its answer: one page when ``limit`` or ``before`` is given, else every page
    back to the first message. Oldest first."""
    if limit is not None or before is not None:
        return (yield _page(session_id, limit, before)).messages
    pages: builtins.list[builtins.list[MessageInfo]] = []
    older: str | None = None
    while True:
        detail = yield _page(session_id, HISTORY_PAGE, older)
        pages.append(detail.messages)
        if detail.next_before is None:
            return [m for page in reversed(pages) for m in page]
        older = detail.next_before


def _read_sync(
    sender: SyncSender, session_id: str, limit: int | None, before: str | None
) -> builtins.list[MessageInfo]:
    steps = _history(session_id, limit, before)
    call = next(steps)
    try:
        while True:
            call = steps.send(sender.send(call))
    except StopIteration as done:
        result: builtins.list[MessageInfo] = done.value
        return result


async def _read_async(
    sender: AsyncSender, session_id: str, limit: int | None, before: str | None
) -> builtins.list[MessageInfo]:
    steps = _history(session_id, limit, before)
    call = next(steps)
    try:
        while True:
            call = steps.send(await sender.send(call))
    except StopIteration as done:
        result: builtins.list[MessageInfo] = done.value
        return result


_MESSAGES_DOC = """The messages, oldest first: the whole history, page after page (a long
session takes several requests), unless ``limit`` or ``before`` is given: then the
one page ``get`` answers (``get`` has its ``next_before``)."""


def _reader(sender: Any, session_id: str | None) -> Any:
    """``messages`` bound to ``sender`` (and to a handle's session id)."""
    read = _read_async if isinstance(sender, AsyncSender) else _read_sync

    if session_id is None:

        def messages(
            session_id: str, *, limit: int | None = None, before: str | None = None
        ) -> Any:
            return read(sender, session_id, limit, before)

        messages.__doc__ = _MESSAGES_DOC
        return messages
    own_id = session_id

    def own_messages(*, limit: int | None = None, before: str | None = None) -> Any:
        return read(sender, own_id, limit, before)

    own_messages.__name__ = own_messages.__qualname__ = "messages"
    own_messages.__doc__ = _MESSAGES_DOC
    return own_messages


class _Messages:
    """``sessions.messages(session_id, ...)``: several requests, so not an operation."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Messages: ...
    @overload
    def __get__(
        self, obj: Bound[SyncSender], owner: type[Any]
    ) -> _ReadMessages[builtins.list[MessageInfo]]: ...
    @overload
    def __get__(
        self, obj: Bound[AsyncSender], owner: type[Any]
    ) -> _ReadMessages[Coroutine[Any, Any, builtins.list[MessageInfo]]]: ...
    def __get__(self, obj: Bound[Any] | None, owner: type[Any]) -> Any:
        return self if obj is None else _reader(obj._sender, None)


class _OwnMessages:
    """``handle.messages(...)``: ``sessions.messages(handle.id, ...)``."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _OwnMessages: ...
    @overload
    def __get__(
        self, obj: Handle[SyncSender], owner: type[Any]
    ) -> _ReadOwnMessages[builtins.list[MessageInfo]]: ...
    @overload
    def __get__(
        self, obj: Handle[AsyncSender], owner: type[Any]
    ) -> _ReadOwnMessages[Coroutine[Any, Any, builtins.list[MessageInfo]]]: ...
    def __get__(self, obj: Handle[Any] | None, owner: type[Any]) -> Any:
        return self if obj is None else _reader(obj._sender, obj.id)


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
        """The session with one page of its messages, oldest first: the newest ``limit``
        (100 when not given, fewer past the server's byte budget) before message
        ``before``; ``next_before`` is set when older ones remain. ``messages`` reads
        them all."""
        params = query_params(limit=limit, before=before)
        return Call(route, route.url(session_id=session_id), model(SessionDetail), params=params)

    messages = _Messages()

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

    patch = update.sent_as("PATCH", "The same as ``update``, sent as PATCH.")

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
    messages = _OwnMessages()
    update = OnHandle(Sessions.update)
    reset = OnHandle(Sessions.reset)
    close = OnHandle(Sessions.close)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.info.title!r}>"


class SessionHandle(ClosedOnExit, _SessionHandle[SyncSender]):
    """A session of the sync ``Client``; ``with`` closes it at the end."""


class AsyncSessionHandle(_SessionHandle[AsyncSender]):
    """A session of the ``AsyncClient``; ``async with`` closes it at the end."""

    async def __aenter__(self) -> AsyncSessionHandle:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
