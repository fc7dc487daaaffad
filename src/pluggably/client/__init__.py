"""A typed Python client of the Pluggably HTTP API (API.md), sync and async.

    from pluggably.client import Client, collect

    with Client("http://127.0.0.1:8080", token="...") as client:
        answer = client.generate("Hello", model="openai:gpt-4o-mini")
        for event in client.generate_stream("Tell me more", model="openai:gpt-4o-mini"):
            ...
        with client.session(title="Chat") as chat:
            chat.generate("Hi, I am Zed.")
            chat.generate("What is my name?")

Requests and answers are the server's own pydantic schemas; errors are
``PluggablyError`` subclasses carrying the envelope's code, status, request id and
Retry-After. The OpenAI- and Anthropic-compatible routes are for those vendors' SDKs.
"""

from pluggably.client.calls import Route
from pluggably.client.client import DEFAULT_URL, AsyncClient, Client, routes
from pluggably.client.errors import (
    AuthError,
    BadRequestError,
    ClientTimeoutError,
    ConflictError,
    ForbiddenError,
    GatewayTimeoutError,
    GoneError,
    NotFoundError,
    PayloadTooLargeError,
    PluggablyError,
    ProtocolError,
    QueueFullError,
    RateLimitedError,
    RequestCancelledError,
    RequestFailedError,
    ServerError,
    SessionClosedError,
    StorageFullError,
    TransportError,
    UnavailableError,
    UpstreamError,
    ValidationError,
)
from pluggably.client.events import (
    Complete,
    Loading,
    ModelSelected,
    Queued,
    ReasoningDelta,
    StatusChanged,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UnknownEvent,
    acollect,
    collect,
)
from pluggably.client.generation import GenerateOptions
from pluggably.client.sessions import AsyncSessionHandle, SessionHandle

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AsyncSessionHandle",
    "AuthError",
    "BadRequestError",
    "Client",
    "ClientTimeoutError",
    "Complete",
    "ConflictError",
    "ForbiddenError",
    "GatewayTimeoutError",
    "GenerateOptions",
    "GoneError",
    "Loading",
    "ModelSelected",
    "NotFoundError",
    "PayloadTooLargeError",
    "PluggablyError",
    "ProtocolError",
    "QueueFullError",
    "Queued",
    "RateLimitedError",
    "ReasoningDelta",
    "RequestCancelledError",
    "RequestFailedError",
    "Route",
    "ServerError",
    "SessionClosedError",
    "SessionHandle",
    "StatusChanged",
    "StorageFullError",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "TransportError",
    "UnavailableError",
    "UnknownEvent",
    "UpstreamError",
    "ValidationError",
    "acollect",
    "collect",
    "routes",
]
