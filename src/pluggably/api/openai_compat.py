"""OpenAI-compatible surface under /openai/v1 (API.md §8). Being written."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/openai/v1", tags=["openai-compatible"])
