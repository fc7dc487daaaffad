"""User logic that does not depend on HTTP."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.users.models import User
from pluggably.users.repository import UserRepository

ADMIN_SYSTEM_KEY = "admin"


async def ensure_admin_user(session: AsyncSession) -> User:
    """The row that the bootstrap admin key and local-only callers act as.

    Idempotent, and safe when several replicas start at once: a lost insert race is
    resolved by reading the winner's row.
    """
    repo = UserRepository(session)
    user = await repo.by_system_key(ADMIN_SYSTEM_KEY)
    if user is not None:
        return user
    try:
        async with session.begin_nested():
            return await repo.add(
                User(
                    username="admin",
                    display_name="Administrator",
                    role="admin",
                    system_key=ADMIN_SYSTEM_KEY,
                    preferences={},
                )
            )
    except IntegrityError:
        user = await repo.by_system_key(ADMIN_SYSTEM_KEY)
        if user is None:
            raise
        return user


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await UserRepository(session).get(user_id)
