"""GET /v1/usage and /v1/usage.csv: usage reports over the request records (API.md §9)."""

from __future__ import annotations

from fastapi import APIRouter

from pluggably.api.schemas import AUTH_ERRORS

router = APIRouter(tags=["usage"], responses=AUTH_ERRORS)
