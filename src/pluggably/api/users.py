"""User routes. Issue 2 serves the caller's own profile; accounts, tokens and
provider keys arrive with the users issue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from pluggably.api.deps import DbSession, Reader
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.errors import Unauthorized
from pluggably.users.service import get_user

router = APIRouter(prefix="/v1/users", tags=["users"], responses=AUTH_ERRORS)


class UserProfile(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str | None
    email: str | None
    display_name: str | None
    role: str
    preferred_model: str | None
    preferences: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@router.get("/me", response_model=UserProfile, responses=error_responses(404))
async def me(principal: Reader, session: DbSession) -> UserProfile:
    user = await get_user(session, principal.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account behind this credential no longer exists.")
    return UserProfile.model_validate(user)
