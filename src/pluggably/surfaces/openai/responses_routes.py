"""OpenAI's Responses API (API.md §8). Placeholder: #18 fills it."""

from __future__ import annotations

from fastapi import APIRouter

from pluggably.surfaces.openai.routing import OPENAI_ERRORS, OpenAIRoute

router = APIRouter(tags=["openai-compatible"], route_class=OpenAIRoute, responses=OPENAI_ERRORS)
