"""Operations declared once for both clients.

Each operation is a pure function from the caller's arguments to a ``Call`` (or a
``StreamCall``), declared in a namespace class with ``@operation(method, path)``. Read
from a namespace bound to the sync sender it is a plain function returning the parsed
answer; bound to the async sender, a coroutine function; streams are an ``Iterator``
or an ``AsyncIterator`` of events. Types follow through (``ParamSpec``), so both
clients are fully typed without writing any operation twice.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    overload,
)

from pluggably.client.calls import Call, Route, StreamCall

if TYPE_CHECKING:
    from pluggably.client.transport import AsyncSender, SyncSender

P = ParamSpec("P")
T = TypeVar("T")
E = TypeVar("E")
S = TypeVar("S")
C = TypeVar("C")
D = TypeVar("D", bound="_Declared[Any, Any]")


class Bound(Generic[S]):
    """A namespace of operations, bound to a sender (``SyncSender``/``AsyncSender``)."""

    def __init__(self, sender: S) -> None:
        self._sender = sender


class Handle(Bound[S]):
    """A namespace bound to one resource id as well (a session)."""

    def __init__(self, sender: S, resource_id: str) -> None:
        super().__init__(sender)
        self.id = resource_id


class _Closable(Protocol):
    def close(self) -> object: ...


class ClosedOnExit:
    """``with`` closes it (``close()``) at the end: a client, a session handle."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self: _Closable,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Declared(Generic[P, C]):
    """One route and the builder of its calls; ``call(*args)`` makes the call."""

    def __init__(self, route: Route, build: Callable[Concatenate[Route, P], C]) -> None:
        self.route = route
        self.build = build
        self.__name__ = build.__name__
        self.__doc__ = build.__doc__
        self.signature = _signature(build, skip=1)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.__name__ = name

    def call(self, *args: P.args, **kwargs: P.kwargs) -> C:
        return self.build(self.route, *args, **kwargs)


class Operation(_Declared[P, Call[T]], Generic[P, T]):
    """One route answered with JSON (or text, bytes, nothing), read as ``T``."""

    def sent_as(self, method: str, doc: str) -> Operation[P, T]:
        """The same operation on another method of its path (``PATCH`` beside ``PUT``)."""
        twin = Operation(Route(method, self.route.template), self.build)
        twin.__doc__ = doc
        return twin

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Operation[P, T]: ...
    @overload
    def __get__(self, obj: Bound[SyncSender], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: Bound[AsyncSender], owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Bound[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        return _bind(self, lambda *a, **k: obj._sender.send(self.call(*a, **k)))


class StreamOperation(_Declared[P, StreamCall[E]], Generic[P, E]):
    """A route answered with server-sent events, read as typed events."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> StreamOperation[P, E]: ...
    @overload
    def __get__(self, obj: Bound[SyncSender], owner: type[Any]) -> Callable[P, Iterator[E]]: ...
    @overload
    def __get__(
        self, obj: Bound[AsyncSender], owner: type[Any]
    ) -> Callable[P, AsyncIterator[E]]: ...
    def __get__(self, obj: Bound[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        return _bind(self, lambda *a, **k: obj._sender.stream(self.call(*a, **k)))


class _OnHandle(Generic[D]):
    """A declared operation whose first argument is the handle's id."""

    def __init__(self, operation: D) -> None:
        self.operation = operation
        self.__name__ = operation.__name__
        self.__doc__ = operation.__doc__
        self.signature = _signature(operation.build, skip=2)


class OnHandle(_OnHandle[Operation[Concatenate[str, P], T]], Generic[P, T]):
    """An operation whose first argument is the handle's id: ``handle.reset()`` is
    ``sessions.reset(handle.id)``."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> OnHandle[P, T]: ...
    @overload
    def __get__(self, obj: Handle[SyncSender], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: Handle[AsyncSender], owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Handle[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        op = self.operation
        return _bind(self, lambda *a, **k: obj._sender.send(op.call(obj.id, *a, **k)))


class StreamOnHandle(_OnHandle[StreamOperation[Concatenate[str, P], E]], Generic[P, E]):
    """A stream operation whose first argument is the handle's id."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> StreamOnHandle[P, E]: ...
    @overload
    def __get__(self, obj: Handle[SyncSender], owner: type[Any]) -> Callable[P, Iterator[E]]: ...
    @overload
    def __get__(
        self, obj: Handle[AsyncSender], owner: type[Any]
    ) -> Callable[P, AsyncIterator[E]]: ...
    def __get__(self, obj: Handle[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        op = self.operation
        return _bind(self, lambda *a, **k: obj._sender.stream(op.call(obj.id, *a, **k)))


def _signature(build: Callable[..., Any], skip: int) -> inspect.Signature:
    """The caller's view of a builder: without the route (and handle id) it is given."""
    signature = inspect.signature(build)
    return signature.replace(
        parameters=list(signature.parameters.values())[skip:],
        return_annotation=inspect.Signature.empty,  # a Call; the caller gets its answer
    )


def _bind(declared: Any, run: Callable[..., Any]) -> Any:
    """``run`` under the operation's name, docstring and signature (for ``help()``)."""

    def bound(*args: Any, **kwargs: Any) -> Any:
        return run(*args, **kwargs)

    bound.__name__ = bound.__qualname__ = declared.__name__
    bound.__doc__ = declared.__doc__
    bound.__signature__ = declared.signature  # type: ignore[attr-defined]
    return bound


def operation(
    method: str, template: str
) -> Callable[[Callable[Concatenate[Route, P], Call[T]]], Operation[P, T]]:
    """Declare an operation in a namespace class: the decorated function receives the
    ``Route`` and the caller's arguments and returns the ``Call``."""

    def declare(build: Callable[Concatenate[Route, P], Call[T]]) -> Operation[P, T]:
        return Operation(Route(method, template), build)

    return declare


def stream_operation(
    method: str, template: str
) -> Callable[[Callable[Concatenate[Route, P], StreamCall[E]]], StreamOperation[P, E]]:
    """Declare a streaming operation in a namespace class."""

    def declare(build: Callable[Concatenate[Route, P], StreamCall[E]]) -> StreamOperation[P, E]:
        return StreamOperation(Route(method, template), build)

    return declare


def routes_of(namespace: type[Any]) -> list[Route]:
    """Every route an operation of ``namespace`` (a class) calls."""
    found: list[Route] = []
    for klass in namespace.__mro__:
        for value in vars(klass).values():
            if isinstance(value, Operation | StreamOperation):
                found.append(value.route)
    return found
