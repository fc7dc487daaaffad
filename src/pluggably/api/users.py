"""Accounts: registration, login/logout, the caller's profile and password."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from pluggably.api.deps import (
    Accounts,
    CurrentPrincipal,
    DbSession,
    Generation,
    Reader,
    ServerLimits,
    Writer,
)
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.usage.limits import Limits
from pluggably.users.admin import effective_limits, stored_limits
from pluggably.users.models import User
from pluggably.users.schemas import (
    ChangePasswordRequest,
    LoginRequest,
    LoginResponse,
    OwnProfile,
    ProfileUpdate,
    RegisterRequest,
    StatusMessage,
    UserProfile,
)

router = APIRouter(prefix="/v1/users", tags=["users"])


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserProfile,
    responses=error_responses(400, 409, 429),
)
async def register(
    body: RegisterRequest, request: Request, session: DbSession, accounts: Accounts
) -> UserProfile:
    """Create an account. Needs a single-use invite unless registration is open.
    Repeated failures from one client address are throttled (429)."""
    return UserProfile.model_validate(await accounts.register(session, body, _address(request)))


@router.post("/login", response_model=LoginResponse, responses=error_responses(401, 429))
async def login(
    body: LoginRequest, request: Request, session: DbSession, accounts: Accounts
) -> LoginResponse:
    """Exchange a password for a login token. Repeated failures are throttled (429)."""
    issued, user = await accounts.login(session, body, _address(request))
    return LoginResponse(
        token=issued.token, expires_at=issued.expires_at, user=UserProfile.model_validate(user)
    )


@router.post(
    "/logout", response_model=StatusMessage, responses={**AUTH_ERRORS, **error_responses(400)}
)
async def logout(
    principal: CurrentPrincipal, session: DbSession, accounts: Accounts
) -> StatusMessage:
    """Revoke the login token this request presents."""
    await accounts.logout(session, principal)
    return StatusMessage(status="logged_out")


def _own(user: User, default: Limits | None) -> OwnProfile:
    return OwnProfile.model_validate(
        {
            **UserProfile.model_validate(user).model_dump(),
            "limits": stored_limits(user.limits),
            "effective_limits": effective_limits(user, default),
        }
    )


@router.get("/me", response_model=OwnProfile, responses=AUTH_ERRORS)
async def me(
    principal: Reader, session: DbSession, accounts: Accounts, default: ServerLimits
) -> OwnProfile:
    """The caller's profile, with the limits set on the account and those in effect."""
    return _own(await accounts.profile(session, principal), default)


@router.patch("/me", response_model=OwnProfile, responses=AUTH_ERRORS)
@router.put(
    "/me",
    response_model=OwnProfile,
    responses=AUTH_ERRORS,
    deprecated=True,
    description="Same as PATCH (only the fields given change); kept because the PlugAI "
    "Dart client sends PUT.",
)
async def update_me(
    body: ProfileUpdate,
    principal: Writer,
    session: DbSession,
    accounts: Accounts,
    generation: Generation,
    default: ServerLimits,
) -> OwnProfile:
    """Update display name, preferred model or preferences; answers what was stored."""
    user = await accounts.update_profile(session, principal, body)
    generation.forget_caller(principal.user_id)
    return _own(user, default)


@router.post(
    "/change-password",
    response_model=StatusMessage,
    responses={**AUTH_ERRORS, **error_responses(400, 429)},
)
async def change_password(
    body: ChangePasswordRequest,
    request: Request,
    principal: Writer,
    session: DbSession,
    accounts: Accounts,
) -> StatusMessage:
    """Change the password; every other login token of this user stops working."""
    await accounts.change_password(session, principal, body, _address(request))
    return StatusMessage(status="password_changed")
