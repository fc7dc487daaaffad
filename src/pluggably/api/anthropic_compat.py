"""Anthropic-compatible surface under /anthropic/v1 (API.md §8). Being written."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/anthropic/v1", tags=["anthropic-compatible"])
