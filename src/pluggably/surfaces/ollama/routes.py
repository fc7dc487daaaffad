"""Ollama's API at /api/* (API.md §8). Placeholder: #18 fills it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pluggably.api.errors import ErrorFormat

PREFIX = "/api"


def _render(status: int, code: str, message: str, details: Any) -> dict[str, Any]:
    return {"error": message}


ERROR_FORMAT: tuple[str, ErrorFormat] = (f"{PREFIX}/", _render)

router = APIRouter(prefix=PREFIX, tags=["ollama-compatible"])
