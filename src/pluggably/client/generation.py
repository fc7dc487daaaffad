"""Generation (API.md §3): request bodies, the caller's requests, artifacts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypedDict
from urllib.parse import parse_qs, urlsplit

import httpx

from pluggably.client.binding import Bound, S, operation, stream_operation
from pluggably.client.calls import Call, Route, StreamCall, content, dump, model, query_params
from pluggably.client.errors import PluggablyError, RequestFailedError, error_class
from pluggably.client.events import StreamEvent, events_from_json, parse_event
from pluggably.generation.list_schemas import RequestList
from pluggably.generation.schemas import (
    Accepted,
    CancelResult,
    ChatMessage,
    GenerateRequest,
    GenerateResponse,
    Modality,
    RequestDetails,
    RequestState,
    RequestStatus,
    SelectionMode,
)


class TurnOptions(TypedDict, total=False):
    """The fields of a generate request besides the prompt and the session (API.md §3)."""

    model: str | None
    provider: str | None
    modality: Modality | None
    messages: Sequence[ChatMessage | Mapping[str, Any]] | None
    images: Sequence[str] | None
    mesh: str | None
    texts: Sequence[str] | None
    parameters: Mapping[str, Any] | None
    system_prompt: str | None
    state_tokens: Mapping[str, Any] | None
    selection_mode: SelectionMode
    while_loading: Literal["wait", "fallback"]
    wait: bool
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    response_format: Mapping[str, Any] | None
    reasoning: Mapping[str, Any] | None


class GenerateOptions(TurnOptions, total=False):
    """``TurnOptions`` and ``session_id`` (a turn of that session)."""

    session_id: str | None


_INPUT_FIELDS = ("messages", "images", "mesh", "texts")


def _plain(value: Any) -> Any:
    if isinstance(value, ChatMessage):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def generate_body(
    prompt: str | GenerateRequest | None,
    options: TurnOptions | GenerateOptions,
    *,
    stream: bool,
) -> dict[str, Any]:
    """The JSON body of a generate call: a prompt (or a whole ``GenerateRequest``)
    and the options given; validated here with the server's own schema."""
    body: dict[str, Any] = {}
    if isinstance(prompt, GenerateRequest):
        body = prompt.model_dump(exclude_unset=True)
    inputs: dict[str, Any] = dict(body.pop("input", {}))
    if isinstance(prompt, str):
        inputs["prompt"] = prompt
    for key, value in options.items():
        if value is None:  # the same as not given: every field's default means "none"
            continue
        target = inputs if key in _INPUT_FIELDS else body
        target[key] = _plain(value)
    body["input"] = inputs  # required by the server, even when empty (a clear 400 then)
    body["stream"] = stream
    return dump(GenerateRequest.model_validate(body))


def embed_body(
    texts: str | Sequence[str],
    model: str | None,
    dimensions: int | None,
    normalize: bool | None,
) -> dict[str, Any]:
    """The generate body of an embedding call: it waits for a busy model (the vectors,
    never a 202)."""
    parameters = {
        k: v for k, v in (("dimensions", dimensions), ("normalize", normalize)) if v is not None
    }
    return generate_body(
        None,
        {
            "model": model,
            "modality": "embedding",
            "texts": [texts] if isinstance(texts, str) else list(texts),
            "parameters": parameters or None,
            "wait": True,
        },
        stream=False,
    )


def embeddings(response: httpx.Response) -> list[list[float]]:
    """The vectors of an embedding answer, one per text, in order."""
    vectors = GenerateResponse.model_validate(response.json()).output.embeddings
    return vectors or []


def generated(response: httpx.Response) -> GenerateResponse | Accepted:
    """200: the response; 202: the request waits in a busy model's queue."""
    if response.status_code == 202:
        return Accepted.model_validate(response.json())
    return GenerateResponse.model_validate(response.json())


def as_events(response: httpx.Response) -> list[StreamEvent]:
    return events_from_json(response.status_code, response.json())


def outcome(details: RequestDetails) -> GenerateResponse | None:
    """The result of a finished request (None while it is queued or running); a failed
    or cancelled one raises its error."""
    if details.status in ("queued", "running"):
        return None
    if details.status == "completed":
        if details.result is None:
            raise PluggablyError(
                f"request {details.request_id} completed; its result is no longer kept",
                code="result_unavailable",
                request_id=details.request_id,
            )
        return GenerateResponse.model_validate(details.result)
    error = details.error or {}
    code = error.get("code") or ("cancelled" if details.status == "cancelled" else "failed")
    message = error.get("message") or f"request {details.request_id} ended {details.status}"
    cls = error_class(code, None)
    if cls is PluggablyError:
        cls = RequestFailedError
    raise cls(message, code=code, request_id=details.request_id)


class _HasRequestId(Protocol):
    request_id: str


class _Linked(Protocol):
    url: str


def request_id_of(item: str | _HasRequestId) -> str:
    return item if isinstance(item, str) else item.request_id


class Requests(Bound[S]):
    """The caller's generation requests: ``client.requests``."""

    @operation("GET", "/v1/requests")
    def list(
        route: Route,
        *,
        status: RequestState | None = None,
        model_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[RequestList]:
        """Your requests, newest first (``model_id``: only those answered by it); an
        administrator may pass another ``user_id``, or ``"*"`` for everyone. Pass
        ``next_cursor`` as ``cursor`` for the next page."""
        params = query_params(
            status=status, model=model_id, user_id=user_id, limit=limit, cursor=cursor
        )
        return Call(route, route.url(), model(RequestList), params=params)

    @operation("GET", "/v1/requests/{request_id}/status")
    def status(route: Route, request_id: str) -> Call[RequestStatus]:
        return Call(route, route.url(request_id=request_id), model(RequestStatus))

    @operation("GET", "/v1/requests/{request_id}")
    def get(route: Route, request_id: str) -> Call[RequestDetails]:
        """Status plus the generate response (``result``) once completed."""
        return Call(route, route.url(request_id=request_id), model(RequestDetails))

    @operation("POST", "/v1/requests/{request_id}/cancel")
    def cancel(route: Route, request_id: str) -> Call[CancelResult]:
        """Stop a queued or running request; its partial text comes back."""
        return Call(route, route.url(request_id=request_id), model(CancelResult))

    @stream_operation("GET", "/v1/requests/{request_id}/events")
    def events(route: Route, request_id: str) -> StreamCall[StreamEvent]:
        """``StatusChanged`` now; for a running request its ``TextDelta``s as they are
        produced, then its final ``StatusChanged``."""
        return StreamCall(route, route.url(request_id=request_id), parse_event)


def _artifact_link(
    artifact: str | _Linked, expires: int | None, sig: str | None
) -> tuple[str, dict[str, Any]]:
    """(artifact id, query) from an artifact (``output.artifacts[]``), its signed URL,
    or its id with ``expires`` and ``sig``."""
    link = artifact if isinstance(artifact, str) else artifact.url
    parts = urlsplit(link)
    params: dict[str, Any] = {}
    if "/" in parts.path:
        given = parse_qs(parts.query)
        params = {k: v[0] for k, v in given.items() if k in ("expires", "sig")}
        artifact_id = parts.path.rstrip("/").rsplit("/", 1)[-1]
    else:
        artifact_id = link
    if expires is not None:
        params["expires"] = expires
    if sig is not None:
        params["sig"] = sig
    return artifact_id, params


class Artifacts(Bound[S]):
    """Generated files behind signed links: ``client.artifacts``."""

    @operation("GET", "/v1/artifacts/{artifact_id}")
    def download(
        route: Route, artifact: str | _Linked, *, expires: int | None = None, sig: str | None = None
    ) -> Call[bytes]:
        """The bytes of an artifact: pass an ``output.artifacts[]`` entry, its URL, or
        its id with ``expires`` and ``sig``. Fetched from this client's server (a
        ``public_base_url`` in the link is not followed)."""
        artifact_id, params = _artifact_link(artifact, expires, sig)
        return Call(route, route.url(artifact_id=artifact_id), content, params=params)
