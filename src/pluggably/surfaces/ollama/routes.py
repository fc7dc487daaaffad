"""Ollama's API at /api/* (API.md §8), for the official ``ollama`` clients and the tools
built on them (client host ``http://host:8080``): ``chat`` and ``generate`` (NDJSON
streams by default), ``embed`` and ``embeddings``, ``tags``, ``show``, ``ps``,
``version``, and for admins ``pull`` and ``delete``.

Each generation becomes a /v1/generate request through the same service (credentials,
routing, fallbacks, queueing: a busy local model makes the call wait, records,
metrics). ``keep_alive`` drives residency (lifecycle/): applied to the local model that
answered, once it answered (none: the server's keep-alive again, as in Ollama). Errors
are ``{"error": message}`` with the status, bad input 400 as Ollama answers it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from pluggably.api.deps import (
    AdminUser,
    Catalog,
    DbSession,
    Downloads,
    Generation,
    Hub,
    Reader,
    Registry,
    Residency,
    Writer,
)
from pluggably.api.errors import ErrorFormat
from pluggably.api.sse import Opened, opening
from pluggably.auth.principal import Principal
from pluggably.errors import FeatureNotSupported
from pluggably.generation.plan import Plan
from pluggably.generation.schemas import GenerateRequest, GenerateResponse
from pluggably.generation.service import GenerationService
from pluggably.lifecycle.residency import ResidencyService
from pluggably.surfaces.bad_input import BadInputRoute as BadRequestRoute
from pluggably.surfaces.ollama import embed, models, pull
from pluggably.surfaces.ollama.keep_alive import KeepAlive, keep_alive
from pluggably.surfaces.ollama.keep_alive import apply as apply_keep_alive
from pluggably.surfaces.ollama.loading import load_or_unload
from pluggably.surfaces.ollama.shapes import (
    OllamaChatAnswer,
    OllamaChatRequest,
    OllamaEmbedAnswer,
    OllamaEmbeddingsAnswer,
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OllamaError,
    OllamaGenerateAnswer,
    OllamaGenerateRequest,
    OllamaModelRequest,
    OllamaProgress,
    OllamaPs,
    OllamaPullRequest,
    OllamaShow,
    OllamaTags,
    OllamaVersion,
)
from pluggably.surfaces.ollama.stream import MEDIA_TYPE, ndjson_response
from pluggably.surfaces.ollama.translate import (
    Kind,
    LineWriter,
    chat_answer,
    chat_request,
    generate_answer,
    generate_request,
    model_name,
)

PREFIX = "/api"
# What GET /api/version answers: an Ollama release whose API has everything served
# here (structured outputs 0.5, streamed tool calls 0.8, thinking 0.9), so clients
# that check a minimum version before using a feature use it.
OLLAMA_VERSION = "0.12.0"


def _render(status: int, code: str, message: str, details: Any) -> dict[str, Any]:
    return {"error": message}


ERROR_FORMAT: tuple[str, ErrorFormat] = (f"{PREFIX}/", _render)


_ERRORS = {
    400: "Bad request: a malformed body, an option out of range, an unsupported feature",
    401: "Missing or invalid credential",
    403: "The credential lacks the scope or role (pull and delete are for admins)",
    404: "Unknown model",
    409: "A model loaded or in use cannot be deleted",
    413: "Body too large",
    422: "NUL characters in the request",
    429: "Rate limited; Retry-After set",
    500: "Unexpected error",
    502: "The provider answered with an error",
    503: "Unavailable (queue full, model loading); Retry-After set",
    504: "Timed out",
}
router = APIRouter(
    prefix=PREFIX,
    tags=["ollama-compatible"],
    # Bad input is a 400 (Ollama's status for it, as OpenAI's), naming the field; the
    # native API says 422. The route class is shared with the OpenAI surface.
    route_class=BadRequestRoute,
    responses={s: {"model": OllamaError, "description": t} for s, t in _ERRORS.items()},
)


def _streamed(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {MEDIA_TYPE: {}}, "description": description}}


@router.post(
    "/chat",
    response_model=OllamaChatAnswer,
    response_model_exclude_none=True,
    responses=_streamed(
        "The answer, or (stream, the default) NDJSON lines: message.content deltas with "
        "done false, tool calls in one line, then done true with done_reason and the "
        "counts; a failure after the first line is {error}."
    ),
)
async def chat(
    body: OllamaChatRequest,
    principal: Writer,
    service: Generation,
    session: DbSession,
    catalog: Catalog,
    residency: Residency,
) -> OllamaChatAnswer | Response:
    """A chat over any model /v1/generate serves. ``images`` (base64) of the turns go
    to the model; ``format`` ``json`` or a JSON Schema (grammar-constrained on local
    models); ``tools`` in Ollama's (OpenAI's) shape; ``think``; ``options`` mapped
    (options.py). No messages: Ollama's load (or, ``keep_alive: 0``, unload) call."""
    keep = keep_alive(body.keep_alive)
    if not body.messages:
        return await load_or_unload(
            "chat", body.model, keep, principal, session, catalog, residency, body.stream
        )
    native = chat_request(body)
    result = await _generate("chat", body.model, native, keep, principal, service, residency)
    return result if isinstance(result, Response) else chat_answer(body.model, result)


@router.post(
    "/generate",
    response_model=OllamaGenerateAnswer,
    response_model_exclude_none=True,
    responses=_streamed(
        "The answer, or (stream, the default) NDJSON lines: response deltas with done "
        "false, then done true with done_reason and the counts; a failure after the "
        "first line is {error}."
    ),
)
async def generate(
    body: OllamaGenerateRequest,
    principal: Writer,
    service: Generation,
    session: DbSession,
    catalog: Catalog,
    residency: Residency,
) -> OllamaGenerateAnswer | Response:
    """A completion of ``prompt`` (``system`` as the system prompt, ``images``
    base64). ``template``, ``context`` and ``raw`` are ignored: the model's own
    template formats the prompt; ``suffix`` is refused. An empty prompt is Ollama's load
    (or, ``keep_alive: 0``, unload) call."""
    keep = keep_alive(body.keep_alive)
    if not body.prompt and not body.images:
        return await load_or_unload(
            "generate", body.model, keep, principal, session, catalog, residency, body.stream
        )
    native = generate_request(body)
    result = await _generate("generate", body.model, native, keep, principal, service, residency)
    return result if isinstance(result, Response) else generate_answer(body.model, result)


@router.post("/embed", response_model=OllamaEmbedAnswer)
async def embed_texts(
    body: OllamaEmbedRequest, principal: Writer, service: Generation, residency: Residency
) -> OllamaEmbedAnswer:
    """One vector per input, in order (unit length; ``dimensions`` truncates, then
    renormalizes); ``truncate`` is ignored (inputs longer than the model's window are
    cut). Any embedding model /v1/generate serves."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    response = await embed.embeddings(service, principal, body.model, texts, body.dimensions)
    _keep(residency, principal, keep_alive(body.keep_alive), response)
    return embed.embed_answer(body.model, response)


@router.post("/embeddings", response_model=OllamaEmbeddingsAnswer)
async def embeddings(
    body: OllamaEmbeddingsRequest, principal: Writer, service: Generation, residency: Residency
) -> OllamaEmbeddingsAnswer:
    """The older embedding route: one ``prompt``, one ``embedding``."""
    response = await embed.embeddings(service, principal, body.model, [body.prompt], None)
    _keep(residency, principal, keep_alive(body.keep_alive), response)
    return OllamaEmbeddingsAnswer(embedding=embed.vectors(response)[0])


@router.get("/tags", response_model=OllamaTags)
async def list_models(
    principal: Reader, session: DbSession, catalog: Catalog, registry: Registry
) -> OllamaTags:
    """The models this caller can use: the available registry models, then the provider
    models their credentials reach (``provider:model``). ``name`` and ``model`` are the
    id to send."""
    return await models.tags(session, principal, catalog, registry)


@router.post("/show", response_model=OllamaShow)
async def show_model(
    body: OllamaModelRequest, principal: Reader, session: DbSession, catalog: Catalog
) -> OllamaShow:
    """A model's details and capabilities (``completion``, ``tools``, ``vision``,
    ``embedding``, ``image``); its context window in ``model_info`` under
    ``pluggably.context_length``."""
    info = await catalog.details(session, principal, model_name(body.target))
    return models.show(info)


@router.get("/ps", response_model=OllamaPs)
async def running_models(
    _principal: Reader, session: DbSession, registry: Registry, residency: Residency
) -> OllamaPs:
    """The local models loaded now; ``expires_at`` when an idle model unloads
    (9999-12-31 for one that stays: pinned, or kept by ``keep_alive`` -1)."""
    return await models.ps(session, registry, residency)


# Ollama answers its root with a plain "Ollama is running"; its CLI and several
# clients probe it (GET or HEAD) before anything else.
root_router = APIRouter(tags=["ollama-compatible"])


@root_router.head("/", response_class=PlainTextResponse, include_in_schema=False)
@root_router.get(
    "/",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Ollama is running"}},
)
async def root() -> str:
    """What Ollama answers at its root, for the clients that check a server is there
    (no credential needed, as for /health)."""
    return "Ollama is running"


@router.get("/version", response_model=OllamaVersion)
async def version() -> OllamaVersion:
    """The Ollama API version this surface speaks (no credential needed, as for
    /version)."""
    return OllamaVersion(version=OLLAMA_VERSION)


@router.post(
    "/pull",
    response_model=OllamaProgress,
    response_model_exclude_none=True,
    responses=_streamed(
        "(stream, the default) NDJSON progress: pulling manifest, pulling <digest> with "
        "total and completed, verifying sha256 digest, writing manifest, success; a "
        "failed download is {error}."
    ),
)
async def pull_model(
    body: OllamaPullRequest, admin: AdminUser, downloads: Downloads, hub: Hub
) -> OllamaProgress | Response:
    """Admins: download ``hf.co/{owner}/{repo}:{quant}`` from Hugging Face through the
    download jobs (GET /v1/jobs shows it), registered under that name."""
    wanted = pull.parse(body.target)
    job_id, digest = await pull.start(downloads, hub, admin.user_id, wanted)
    if body.stream:
        return ndjson_response(pull.progress(downloads, job_id, digest))
    await pull.outcome(downloads, job_id)
    return OllamaProgress(status="success")


@router.delete("/delete", responses={200: {"description": "Deleted (an empty body)."}})
async def delete_model(
    body: OllamaModelRequest,
    _admin: AdminUser,
    session: DbSession,
    registry: Registry,
    residency: Residency,
) -> Response:
    """Admins: unregister a model and delete the files it owns, as DELETE
    /v1/models/{id}; a loaded model is unloaded first, as Ollama does (after its
    requests in flight), and one still in use then is a 409."""
    model_id = model_name(body.target)
    await residency.unload(session, model_id, force=True)  # 404 for an unknown name
    await registry.delete(session, model_id)
    return Response(status_code=200)


@router.post("/copy", responses={200: {"description": "Never: always 400."}})
@router.post("/create", responses={200: {"description": "Never: always 400."}})
@router.post("/push", responses={200: {"description": "Never: always 400."}})
async def not_supported(request: Request, _admin: AdminUser) -> Response:
    """Admins: Ollama's copy, create (Modelfiles) and push have no counterpart here:
    a clear 400 rather than an unknown route. Models come from ``pull``, the models
    directory or POST /v1/models/download."""
    what = request.url.path.removeprefix(f"{PREFIX}/")
    raise FeatureNotSupported(
        f"{what} is not supported here: models come from pull (hf.co/{{owner}}/{{repo}}:"
        "{quantization}), the models directory or POST /v1/models/download."
    )


# helpers
async def _generate(
    kind: Kind,
    shown: str,
    native: GenerateRequest,
    keep: KeepAlive | None,
    principal: Principal,
    service: GenerationService,
    residency: ResidencyService,
) -> GenerateResponse | Response:
    """The answer, or (stream) the NDJSON response; the keep-alive applied once the
    model answered."""
    plan = await service.prepare(principal, native)
    writer = LineWriter(kind, shown)
    if native.stream:
        return await _stream(service, plan, writer, lambda r: _keep(residency, principal, keep, r))
    result = await service.generate(plan, wait=True)
    assert isinstance(result, GenerateResponse)  # wait=True never answers 202
    _keep(residency, principal, keep, result)
    return result


def _keep(
    residency: ResidencyService,
    principal: Principal,
    keep: KeepAlive | None,
    response: GenerateResponse,
) -> None:
    """The request's keep-alive (or the server's), for the local model that answered."""
    selection = response.selection
    if selection.selected_provider == "local":
        model_id = selection.selected_model.removeprefix("local:")
        apply_keep_alive(residency, model_id, keep, is_admin=principal.is_admin)


async def _stream(
    service: GenerationService,
    plan: Plan,
    writer: LineWriter,
    answered: Callable[[GenerateResponse], None],
) -> Response:
    """A failure before the first line (every candidate tried) is a plain HTTP error
    with its status, which the client raises; a later one is an ``{"error"}`` line."""
    opened, refused = await opening(service.stream(plan), _render)
    if opened is None:
        assert refused is not None
        return refused
    return ndjson_response(_lines(opened, writer, answered), source=opened)


async def _lines(
    opened: Opened, writer: LineWriter, answered: Callable[[GenerateResponse], None]
) -> AsyncIterator[dict[str, Any]]:
    try:
        async for event in opened:
            for line in writer.feed(event):
                yield line
        if writer.completed is not None:
            answered(writer.completed)
    finally:
        await opened.aclose()
