"""The OpenAPI document says how to authenticate: the two schemes of API.md §1 (an
``X-API-Key`` header; ``Authorization: Bearer``, for API tokens and login JWTs), and on
each operation whether it needs one, so generic tools and SDK generators know."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from pluggably.api.deps import authenticate, metrics_access

SCHEMES = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The admin key, an API token (plg_…) or a login token.",
    },
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (plg_…) or a login token (POST /v1/users/login).",
    },
}
REQUIREMENT: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]


def document_security(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so that the (cached) document carries the schemes."""
    build = app.openapi
    guarded = {
        (path, method.lower())
        for path, route in _api_routes(app.routes)
        if _needs_credential(route.dependant)
        for method in route.methods or ()
    }

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = build()  # cached by FastAPI after the first call
        if first:
            schema.setdefault("components", {})["securitySchemes"] = SCHEMES
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    if (path, method) in guarded:
                        operation["security"] = REQUIREMENT
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, included routers' too (FastAPI keeps those as
    the router, with the prefix it was included under in its context)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path_format, route
        included = getattr(route, "original_router", None) or getattr(route, "router", None)
        if included is not None and hasattr(included, "routes"):
            context = getattr(route, "include_context", None)
            yield from _api_routes(included.routes, prefix + getattr(context, "prefix", ""))


def _needs_credential(dependant: Dependant) -> bool:
    # /metrics checks the admin itself (it is public only when configured so).
    return any(
        d.call in (authenticate, metrics_access) or _needs_credential(d)
        for d in dependant.dependencies
    )
