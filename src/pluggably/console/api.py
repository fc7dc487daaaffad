"""The console's own session: sign in and out with an HttpOnly cookie, the first-run
setup of the first administrator, and what the sign-in page needs to know."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/ui/api", tags=["console"])
