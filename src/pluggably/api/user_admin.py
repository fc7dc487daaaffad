"""Administrators manage users: GET /v1/users, GET/PATCH /v1/users/{id}, and
GET/PUT/PATCH /v1/users/{id}/limits (API.md §6, §9). Mounted after every fixed
/v1/users/… route, so ``{user_id}`` never captures ``me``, ``tokens``, …"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pluggably.api.deps import AdminUser, DbSession, Generation, UserAdministration
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.usage.limits import Limits
from pluggably.users.schemas import UserList, UserQuery, UserSummary, UserUpdate

router = APIRouter(prefix="/v1/users", tags=["users"], responses=AUTH_ERRORS)
NOT_FOUND = error_responses(404)


@router.get("", response_model=UserList)
async def list_users(
    _caller: AdminUser,
    session: DbSession,
    admin: UserAdministration,
    query: Annotated[UserQuery, Query()],
) -> UserList:
    """Every account, the server's own admin row included, oldest first; ``q`` filters,
    ``next_cursor`` pages on."""
    return await admin.page(session, query)


@router.get("/{user_id}", response_model=UserSummary, responses=NOT_FOUND)
async def get_user(
    user_id: str, _caller: AdminUser, session: DbSession, admin: UserAdministration
) -> UserSummary:
    return UserSummary.of(await admin.get(session, user_id))


@router.patch("/{user_id}", response_model=UserSummary, responses=error_responses(404, 409))
async def update_user(
    user_id: str,
    body: UserUpdate,
    principal: AdminUser,
    session: DbSession,
    admin: UserAdministration,
    generation: Generation,
) -> UserSummary:
    """Change the role, disable or re-enable, or rename an account; applies to its very
    next request. 409 for a change that would lock administrators out: disabling or
    demoting oneself, the last active administrator, or the server's own admin row."""
    user = await admin.update(session, principal.user_id, await admin.get(session, user_id), body)
    generation.forget_caller(user.id)
    return UserSummary.of(user)


@router.get("/{user_id}/limits", response_model=Limits, responses=NOT_FOUND)
async def get_limits(
    user_id: str, _caller: AdminUser, session: DbSession, admin: UserAdministration
) -> Limits:
    """The limits set on this account (null: none at this level). The server default
    and the account's tokens' own limits apply besides; the strictest wins."""
    return admin.limits(await admin.get(session, user_id))


@router.put("/{user_id}/limits", response_model=Limits, responses=NOT_FOUND)
async def put_limits(
    user_id: str,
    body: Limits,
    _caller: AdminUser,
    session: DbSession,
    admin: UserAdministration,
    generation: Generation,
) -> Limits:
    """Replace the account's limits: a field left out or null is cleared (``{}`` clears
    them all). Applies to the account's next request on this server, within 2 s on
    others."""
    limits = await admin.replace_limits(session, await admin.get(session, user_id), body)
    generation.forget_caller(user_id)
    return limits


@router.patch("/{user_id}/limits", response_model=Limits, responses=NOT_FOUND)
async def patch_limits(
    user_id: str,
    body: Limits,
    _caller: AdminUser,
    session: DbSession,
    admin: UserAdministration,
    generation: Generation,
) -> Limits:
    """Change only the fields given: a value replaces, null clears; the others stay."""
    limits = await admin.merge_limits(session, await admin.get(session, user_id), body)
    generation.forget_caller(user_id)
    return limits
