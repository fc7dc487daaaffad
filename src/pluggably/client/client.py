"""``Client`` and ``AsyncClient``: every native route of a Pluggably server.

Both read the same operation declarations (see ``binding``); they differ only in
their sender and in the few helpers that wait (polling, sessions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, Unpack

import httpx

from pluggably import __version__
from pluggably.client.accounts import Invites, ProviderKeys, Tokens, Users
from pluggably.client.binding import Bound, ClosedOnExit, S, operation, routes_of, stream_operation
from pluggably.client.calls import (
    Call,
    Route,
    StreamCall,
    json_object,
    model,
    query_params,
    text,
)
from pluggably.client.catalog import Jobs, Models, Storage
from pluggably.client.errors import ClientTimeoutError
from pluggably.client.events import StreamEvent, parse_event
from pluggably.client.generation import (
    Artifacts,
    GenerateOptions,
    Requests,
    as_events,
    embed_body,
    embeddings,
    generate_body,
    generated,
    outcome,
    request_id_of,
)
from pluggably.client.sessions import AsyncSessionHandle, SessionHandle, Sessions
from pluggably.client.transport import AsyncSender, SyncSender, credential_headers
from pluggably.client.usage import UsageCalls
from pluggably.generation.schemas import Accepted, GenerateRequest, GenerateResponse
from pluggably.observability.schemas import Features, Health, Ready, Version
from pluggably.providers.schemas import ProviderList

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# The server sends a keep-alive comment every 15 s on an idle stream: a minute of
# silence means the connection is gone.
STREAM_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
POLL_S = 0.5

Waitable = str | Accepted | GenerateResponse
H = TypeVar("H", bound=httpx.Client | httpx.AsyncClient)
Tr = TypeVar("Tr", bound=httpx.BaseTransport | httpx.AsyncBaseTransport)

NAMESPACES: dict[str, type[Bound[Any]]] = {
    "users": Users,
    "tokens": Tokens,
    "provider_keys": ProviderKeys,
    "invites": Invites,
    "models": Models,
    "jobs": Jobs,
    "storage": Storage,
    "requests": Requests,
    "sessions": Sessions,
    "artifacts": Artifacts,
}


class _Api(UsageCalls[S]):
    """The operations at the top level (the usage reports' among them), and the namespaces."""

    def __init__(self, sender: S) -> None:
        super().__init__(sender)
        self.users = Users(sender)
        self.tokens = Tokens(sender)
        self.provider_keys = ProviderKeys(sender)
        self.invites = Invites(sender)
        self.models = Models(sender)
        self.jobs = Jobs(sender)
        self.storage = Storage(sender)
        self.requests = Requests(sender)
        self.sessions = Sessions(sender)
        self.artifacts = Artifacts(sender)

    @operation("POST", "/v1/generate")
    def generate(
        route: Route,
        /,
        prompt: str | GenerateRequest | None = None,
        **options: Unpack[GenerateOptions],
    ) -> Call[GenerateResponse | Accepted]:
        """Generate: the response, or ``Accepted`` when a local model is busy and
        ``wait`` is false (then ``wait_for(accepted)``)."""
        body = generate_body(prompt, options, stream=False)
        return Call(route, route.url(), generated, body=body)

    @stream_operation("POST", "/v1/generate")
    def generate_stream(
        route: Route,
        /,
        prompt: str | GenerateRequest | None = None,
        **options: Unpack[GenerateOptions],
    ) -> StreamCall[StreamEvent]:
        """Generate as typed events: ``Queued``/``Loading`` while waiting,
        ``ModelSelected``, ``TextDelta``s, then ``Complete`` or ``StreamError``.
        ``collect()`` turns the events into the final response."""
        body = generate_body(prompt, options, stream=True)
        return StreamCall(route, route.url(), parse_event, body=body, fallback=as_events)

    @operation("POST", "/v1/generate")
    def embed(
        route: Route,
        /,
        texts: str | Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        normalize: bool | None = None,
    ) -> Call[list[list[float]]]:
        """Embed ``texts`` (one string: one vector): one vector per text, in order,
        unit length unless ``normalize=False``, cut to ``dimensions`` when given. The
        default embedding model answers unless ``model`` names one. (For the usage,
        ``generate(modality="embedding", texts=[...])`` returns the whole response.)"""
        body = embed_body(texts, model, dimensions, normalize)
        return Call(route, route.url(), embeddings, body=body)

    @operation("GET", "/v1/providers")
    def providers(route: Route, *, discover: bool | None = None) -> Call[ProviderList]:
        """Every provider of the deployment and whether this user can call it."""
        params = query_params(discover=discover)
        return Call(route, route.url(), model(ProviderList), params=params)

    @operation("GET", "/v1/features")
    def features(route: Route) -> Call[Features]:
        return Call(route, route.url(), model(Features))

    @operation("GET", "/v1/schema")
    def schema_index(route: Route) -> Call[dict[str, Any]]:
        """The request fields, modalities and model-selection rules (for a model's
        parameter schema: ``models.schema(model_id)``)."""
        return Call(route, route.url(), json_object)

    @operation("GET", "/health")
    def health(route: Route) -> Call[Health]:
        return Call(route, route.url(), model(Health))

    @operation("GET", "/ready")
    def ready(route: Route) -> Call[Ready]:
        """Ready, or ``UnavailableError`` (``not_ready``, ``details.missing``)."""
        return Call(route, route.url(), model(Ready))

    @operation("GET", "/version")
    def version(route: Route) -> Call[Version]:
        return Call(route, route.url(), model(Version))

    @operation("GET", "/metrics")
    def metrics(route: Route) -> Call[str]:
        """Prometheus text format."""
        return Call(route, route.url(), text, headers={"Accept": "text/plain"})


def routes() -> list[Route]:
    """Every route the clients call (each once), for comparing with ``/openapi.json``."""
    found = {(r.method, r.path): r for r in routes_of(_Api)}
    for namespace in NAMESPACES.values():
        found.update({(r.method, r.path): r for r in routes_of(namespace)})
    return sorted(found.values(), key=lambda r: (r.path, r.method))


def _headers(
    api_key: str | None, token: str | None, extra: Mapping[str, str] | None
) -> dict[str, str]:
    return {**credential_headers(api_key, token), **(extra or {})}


def _deadline(max_wait_s: float | None) -> float | None:
    return None if max_wait_s is None else time.monotonic() + max_wait_s


def _expired(deadline: float | None, request_id: str) -> bool:
    if deadline is not None and time.monotonic() >= deadline:
        raise ClientTimeoutError(
            f"request {request_id} did not finish in time", code="client_timeout"
        )
    return False


class _Connected(_Api[S], Generic[S, H, Tr]):
    """A client and its connections: ``Client`` and ``AsyncClient`` differ only in
    their httpx client and sender (``_http_class``, ``_sender_class``)."""

    _http_class: Callable[..., H]
    _sender_class: Callable[[H, str, Mapping[str, str], Any], S]

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        stream_timeout: float | httpx.Timeout = STREAM_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: Tr | None = None,
        http_client: H | None = None,
    ) -> None:
        self._owns_http = http_client is None
        self._http: H = http_client or self._http_class(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"pluggably-client/{__version__}"},
        )
        credentials = _headers(api_key, token, headers)
        self._stream_timeout = stream_timeout
        super().__init__(
            self._sender_class(self._http, str(self._http.base_url), credentials, stream_timeout)
        )

    def with_auth(self, *, api_key: str | None = None, token: str | None = None) -> Self:
        """Another client of the same server and connection pool, with this credential."""
        return type(self)(
            api_key=api_key,
            token=token,
            stream_timeout=self._stream_timeout,
            http_client=self._http,
        )


class Client(ClosedOnExit, _Connected[SyncSender, httpx.Client, httpx.BaseTransport]):
    """A Pluggably server, over HTTP (blocking).

    ``api_key`` is sent as ``X-API-Key``, ``token`` (a login or API token) as
    ``Authorization: Bearer``. ``transport`` replaces httpx's (tests), ``http_client``
    the whole httpx client (then ``base_url`` and ``timeout`` are its own)."""

    _http_class = httpx.Client
    _sender_class = SyncSender

    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` passed in)."""
        if self._owns_http:
            self._http.close()

    def session(
        self,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        session_id: str | None = None,
    ) -> SessionHandle:
        """A new session (or, with ``session_id``, an existing one) as a handle:
        ``generate``/``stream``/``regenerate``/``messages``/``reset``/``close``."""
        if session_id is not None:
            return SessionHandle(self._sender, self.sessions.get(session_id, limit=1))
        info = self.sessions.create(title=title, system_prompt=system_prompt)
        return SessionHandle(self._sender, info)

    def wait_for(
        self, item: Waitable, *, poll_s: float = POLL_S, max_wait_s: float | None = None
    ) -> GenerateResponse:
        """The result of a queued request (an ``Accepted`` or its id), polling every
        ``poll_s``; a response is returned as is. A failed or cancelled request
        raises its error; past ``max_wait_s``, ``ClientTimeoutError``."""
        if isinstance(item, GenerateResponse):
            return item
        request_id = request_id_of(item)
        deadline = _deadline(max_wait_s)
        while (result := outcome(self.requests.get(request_id))) is None:
            _expired(deadline, request_id)
            time.sleep(poll_s)
        return result


class AsyncClient(_Connected[AsyncSender, httpx.AsyncClient, httpx.AsyncBaseTransport]):
    """A Pluggably server, over HTTP (asyncio); see ``Client``. ``transport`` may be
    ``httpx.ASGITransport(app=app)`` to talk to an app in the same process."""

    _http_class = httpx.AsyncClient
    _sender_class = AsyncSender

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def session(
        self,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        session_id: str | None = None,
    ) -> AsyncSessionHandle:
        """See ``Client.session``."""
        if session_id is not None:
            detail = await self.sessions.get(session_id, limit=1)
            return AsyncSessionHandle(self._sender, detail)
        info = await self.sessions.create(title=title, system_prompt=system_prompt)
        return AsyncSessionHandle(self._sender, info)

    async def wait_for(
        self, item: Waitable, *, poll_s: float = POLL_S, max_wait_s: float | None = None
    ) -> GenerateResponse:
        """See ``Client.wait_for``."""
        if isinstance(item, GenerateResponse):
            return item
        request_id = request_id_of(item)
        deadline = _deadline(max_wait_s)
        while (result := outcome(await self.requests.get(request_id))) is None:
            _expired(deadline, request_id)
            await asyncio.sleep(poll_s)
        return result
