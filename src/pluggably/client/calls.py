"""Routes and calls: what one operation sends and how its answer is read.

A ``Route`` is one operation of the HTTP API (method and path template, as in
``/openapi.json``). A ``Call`` is one request to it, built by a pure function from
the caller's arguments; the sync and async clients differ only in how they send it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr

T = TypeVar("T")
E = TypeVar("E")
M = TypeVar("M", bound=BaseModel)

_PARAM = re.compile(r"\{(\w+)(:path)?\}")


class _Unset:
    """The default of an argument whose ``None`` means something (``title=None``
    removes a title); an argument left unset is not sent at all."""

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Route:
    """One operation: ``{name}`` is a path segment, ``{name:path}`` may contain ``/``
    (model ids such as ``Qwen/Qwen2.5-0.5B-Instruct-GGUF``)."""

    method: str
    template: str

    @property
    def path(self) -> str:
        """The path as ``/openapi.json`` names it."""
        return _PARAM.sub(r"{\1}", self.template)

    def url(self, **values: str) -> str:
        def fill(match: re.Match[str]) -> str:
            value = values[match.group(1)]
            if not value:
                raise ValueError(f"{match.group(1)} must not be empty")
            return quote(value, safe="/:" if match.group(2) else "")

        return _PARAM.sub(fill, self.template)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reading of its answer (``parse`` sees only 2xx answers)."""

    route: Route
    url: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamCall(Generic[E]):
    """A request answered with server-sent events: ``frame`` reads each JSON frame.

    ``fallback`` reads an answer that came as JSON instead (``stream`` is ignored for
    image and 3D generation)."""

    route: Route
    url: str
    frame: Callable[[dict[str, Any]], E]
    params: Mapping[str, Any] | None = None
    body: Any = None
    fallback: Callable[[httpx.Response], list[E]] | None = None


# -- answers ----------------------------------------------------------------------------------


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    """Read the answer as ``cls``."""

    def parse(response: httpx.Response) -> M:
        return cls.model_validate(response.json())

    return parse


def nothing(_response: httpx.Response) -> None:
    """204 No Content."""


def text(response: httpx.Response) -> str:
    return response.text


def content(response: httpx.Response) -> bytes:
    return response.content


def json_object(response: httpx.Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


# -- bodies and queries -----------------------------------------------------------------------


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def dump(body: BaseModel) -> dict[str, Any]:
    """The JSON body for ``body``: only the fields that were set (the server applies its
    own defaults), secrets in clear (they are what is being sent)."""
    from pydantic_core import to_jsonable_python

    data = _reveal(body.model_dump(mode="python", exclude_unset=True, by_alias=True))
    result: dict[str, Any] = to_jsonable_python(data)
    return result


def fields(**values: Any) -> dict[str, Any]:
    """The arguments that were given (not ``UNSET``), for a model's constructor."""
    return {k: v for k, v in values.items() if v is not UNSET}


def query_params(**values: Any) -> dict[str, Any]:
    """Query parameters without the ones left out (None or UNSET); booleans as the
    server reads them."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value is UNSET:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out
