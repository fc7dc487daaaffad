"""Bad input on the compatibility surfaces: OpenAI and Ollama answer a malformed
request with 400 naming the field, where the native API says 422. One route class turns
FastAPI's validation errors and the model-schema check into that 400; each surface
names fields in its own words (``names``: native parameter → the surface's field)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from pluggably.errors import InvalidJson, InvalidParameter, ValidationFailed


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """``{loc, msg, type}`` per problem (never the input: it may hold secrets)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in errors
    ]


def field_path(details: Any, names: Mapping[str, str] | None = None) -> str | None:
    """The field the first problem is about, as the client wrote it:
    ``messages[0].content``; a native parameter by the surface's name for it."""
    if not isinstance(details, list) or not details or not isinstance(details[0], dict):
        return None
    loc = [p for p in details[0].get("loc") or () if p != "body"]
    if loc[:1] == ["parameters"] and len(loc) > 1:
        loc = [(names or {}).get(str(loc[1]), str(loc[1])), *loc[2:]]
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def invalid(
    details: list[dict[str, Any]],
    message: str | None = None,
    names: Mapping[str, str] | None = None,
) -> InvalidParameter:
    """A 400 naming the first offending field."""
    first = details[0] if details else {"msg": "invalid request"}
    param = field_path(details, names)
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    text = message or f"Invalid value for '{param or 'body'}': {first['msg']}{more}"
    return InvalidParameter(text, details=details)


class BadInputRoute(APIRoute):
    """Invalid input answers 400 naming the field; a body that is not JSON, 400
    ``invalid_json``."""

    names: ClassVar[Mapping[str, str]] = {}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        names = self.names

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = exc.errors()
                if any(e.get("type") == "json_invalid" for e in errors):
                    raise InvalidJson() from None
                raise invalid(validation_details(errors), names=names) from None
            except ValidationFailed as exc:  # parameters against the model's schema
                details = exc.details if isinstance(exc.details, list) else []
                raise invalid(details, None if details else exc.message, names) from None

        return run
