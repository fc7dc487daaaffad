"""Administrators manage accounts (API.md §6): list and look them up, change their role
or disable them, and set each one's limits (§9).

Nothing here caches: the credential verifiers read the account on every request, so a
change applies to the account's very next request. The generation service's caller
cache (≤ 2 s) is for the route to clear on this server."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.config import Settings
from pluggably.errors import Conflict, NotFound
from pluggably.sessions.paging import decode_cursor
from pluggably.usage.limits import Limits, strictest
from pluggably.users.models import User
from pluggably.users.repository import UserRepository
from pluggably.users.schemas import UserList, UserQuery, UserSummary, UserUpdate


def stored_limits(raw: dict[str, Any] | None) -> Limits | None:
    """A ``limits`` column (users or api_tokens) as a Limits; None when unset."""
    return Limits.model_validate(raw) if raw is not None else None


def to_column(limits: Limits) -> dict[str, Any] | None:
    """What a ``limits`` column stores: the fields set, or None when none is."""
    return limits.model_dump(mode="json", exclude_none=True) or None


def effective_limits(user: User, default: Limits | None) -> Limits:
    """What bounds ``user``: the server default (not for administrators) and their own
    limits, the strictest of each. A token of theirs may not be wider."""
    return strictest(None if user.role == "admin" else default, stored_limits(user.limits))


def encode_cursor(last: User) -> str:
    """The keyset of the page's last account; sessions' decoder reads the same shape."""
    raw = json.dumps({"t": last.created_at.isoformat(), "id": last.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class UserAdmin:
    # Whether anyone can act as the server's own admin row (an admin key is configured,
    # or local-only mode): then it counts as an active administrator.
    system_admin_reachable: bool

    @classmethod
    def of(cls, settings: Settings) -> UserAdmin:
        return cls(system_admin_reachable=settings.admin_key is not None or settings.local_only)

    async def page(self, session: AsyncSession, query: UserQuery) -> UserList:
        """One page, oldest account first, in one query; next_cursor or None."""
        rows = await UserRepository(session).page(
            after=decode_cursor(query.cursor), search=query.q, limit=query.limit + 1
        )
        page = rows[: query.limit]
        return UserList(
            users=[UserSummary.of(user) for user in page],
            next_cursor=encode_cursor(page[-1]) if len(rows) > query.limit else None,
        )

    async def get(self, session: AsyncSession, user_id: str) -> User:
        user = await UserRepository(session).get(user_id)
        if user is None:
            raise NotFound(f"No user with id '{user_id}'.")
        return user

    async def find(self, session: AsyncSession, name_or_id: str) -> User:
        """By id, username or email (the command line takes any of them)."""
        repo = UserRepository(session)
        user = await repo.get(name_or_id) or await repo.by_login(name_or_id)
        if user is None:
            raise NotFound(f"No user with id, username or email '{name_or_id}'.")
        return user

    async def update(
        self, session: AsyncSession, actor_id: str | None, user: User, patch: UserUpdate
    ) -> User:
        """Apply ``patch`` to ``user`` on behalf of ``actor_id`` (None: the operator at
        the command line). Answers 409 rather than leave the server without an
        administrator people can sign in as, or lock out its own admin row."""
        changes = patch.model_dump(exclude_unset=True)
        demote = changes.get("role") == "user" and user.role == "admin"
        disable = changes.get("disabled") is True and user.is_active
        if demote or disable:
            await self._may_lose(session, actor_id, user, "disabled" if disable else "demoted")
        if "role" in changes:
            user.role = changes["role"]
        if "disabled" in changes:
            user.is_active = not changes["disabled"]
        if "display_name" in changes:
            user.display_name = changes["display_name"]
        await session.flush()
        return user

    async def _may_lose(
        self, session: AsyncSession, actor_id: str | None, user: User, change: str
    ) -> None:
        if user.system_key is not None:
            raise Conflict(
                "This is the server's own administrator account (the admin key and "
                f"local-only mode act as it); it cannot be {change}."
            )
        if user.id == actor_id:
            raise Conflict(
                f"Your own account cannot be {change} by yourself; ask another administrator."
            )
        if user.role == "admin" and user.is_active:
            others = await UserRepository(session).other_active_admins(
                user.id, with_system=self.system_admin_reachable
            )
            if not others:
                raise Conflict(
                    f"'{user.username or user.email or user.id}' is the last active "
                    f"administrator (no admin key is configured); it cannot be {change}. "
                    "Make another account an administrator first."
                )

    @staticmethod
    def limits(user: User) -> Limits:
        return Limits.model_validate(user.limits or {})

    async def replace_limits(self, session: AsyncSession, user: User, limits: Limits) -> Limits:
        """PUT: ``limits`` is the whole new set (a field left out or null is cleared)."""
        user.limits = to_column(limits)
        await session.flush()
        return self.limits(user)

    async def merge_limits(self, session: AsyncSession, user: User, patch: Limits) -> Limits:
        """PATCH: the fields given replace (null clears one); the others stay."""
        merged = dict(user.limits or {})
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return await self.replace_limits(session, user, Limits.model_validate(merged))
