"""``create_app(settings)``: the FastAPI application: its routes, middleware and
error handlers, and its lifespan (lifespan.py).

Importing this module does no I/O.
"""

from __future__ import annotations

from fastapi import FastAPI

from pluggably import __version__
from pluggably.api import (
    artifacts,
    generate,
    invites,
    jobs,
    lifecycle,
    models,
    ops,
    parameter_schemas,
    provider_keys,
    providers,
    request_list,
    session_generate,
    sessions,
    storage,
    tokens,
    usage,
    user_admin,
    users,
)
from pluggably.api.errors import ErrorFormats, install_error_handlers
from pluggably.api.middleware import RequestMiddleware
from pluggably.api.openapi_security import document_security
from pluggably.api.schemas import COMMON_ERRORS
from pluggably.config import Settings
from pluggably.console.routes import mount_console
from pluggably.lifespan import lifespan
from pluggably.observability.logging import configure_logging
from pluggably.observability.metrics import Metrics
from pluggably.startup import Readiness
from pluggably.surfaces.anthropic import routes as anthropic_surface
from pluggably.surfaces.ollama import routes as ollama_surface
from pluggably.surfaces.openai import embeddings as openai_embeddings
from pluggably.surfaces.openai import responses_routes as openai_responses
from pluggably.surfaces.openai import routes as openai_surface
from pluggably.surfaces.openai.routing import ALIAS_PREFIX as OPENAI_ALIAS
from pluggably.surfaces.openai.routing import ERROR_FORMATS as OPENAI_ERROR_FORMATS
from pluggably.surfaces.openai.routing import PREFIX as OPENAI_PREFIX


def create_app(settings: Settings) -> FastAPI:
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    readiness = Readiness()
    readiness.expect("database", "migrations")
    app = FastAPI(
        title="Pluggably",
        version=__version__,
        summary="One HTTP API for text, image and 3D generation over providers and local models.",
        lifespan=lambda app: lifespan(app, settings, metrics, readiness),
        responses=COMMON_ERRORS,
    )
    app.state.readiness = readiness
    app.state.metrics = metrics
    # The compatibility surfaces answer errors in their vendor's shape.
    errors = ErrorFormats(
        (*OPENAI_ERROR_FORMATS, anthropic_surface.ERROR_FORMAT, ollama_surface.ERROR_FORMAT)
    )
    install_error_handlers(app, errors)
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        errors=errors,
    )
    # Generation first: routes are matched in order, and it is the hot path.
    for router in (
        generate.router,
        request_list.router,  # GET /v1/requests: the list; generate.py has the rest
        ops.router,
        users.router,
        tokens.router,
        provider_keys.router,
        invites.router,
        user_admin.router,  # after every fixed /v1/users/… route
        usage.router,
        lifecycle.router,
        models.router,
        parameter_schemas.router,
        jobs.router,
        storage.router,
        artifacts.router,
        sessions.router,
        session_generate.router,
        providers.router,
        anthropic_surface.router,
        ollama_surface.router,
        ollama_surface.root_router,
    ):
        app.include_router(router)
    # OpenAI's routes under /openai/v1, and those that do not clash with native ones
    # under /v1 too (surfaces/openai/routing.py); /v1/models stays the native catalog.
    openai_routers = (openai_surface.router, openai_embeddings.router, openai_responses.router)
    for router in openai_routers:
        app.include_router(router, prefix=OPENAI_PREFIX)
    app.include_router(openai_surface.models_router, prefix=OPENAI_PREFIX)
    for router in openai_routers:  # the same operations: documented once
        app.include_router(router, prefix=OPENAI_ALIAS, include_in_schema=False)
    mount_console(app)
    document_security(app)
    return app
