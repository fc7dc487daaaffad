"""Administrators manage users: GET /v1/users, GET/PATCH /v1/users/{id}, and
GET/PUT /v1/users/{id}/limits (API.md §6, §9). Mounted after every fixed
/v1/users/… route, so ``{user_id}`` never captures ``me``, ``tokens``, …"""

from __future__ import annotations

from fastapi import APIRouter

from pluggably.api.schemas import AUTH_ERRORS

router = APIRouter(tags=["users"], responses=AUTH_ERRORS)
