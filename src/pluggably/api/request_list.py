"""The caller's requests, newest first (admins: anyone's), for the console's
requests page."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/requests", tags=["requests"])
