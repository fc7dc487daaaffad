"""Invites: single-use, expiring secrets that admins hand out for registration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.token_hash import TokenHasher
from pluggably.db import utcnow
from pluggably.errors import InvalidInvite, NotFound
from pluggably.users.models import Invite
from pluggably.users.repository import UserRepository

INVITE_PREFIX = "inv"


def invite_status(invite: Invite, now: datetime | None = None) -> str:
    if invite.used_at is not None:
        return "used"
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at <= (now or utcnow()):
        return "expired"
    return "pending"


@dataclass
class InviteService:
    hasher: TokenHasher
    default_ttl: timedelta

    async def create(
        self, session: AsyncSession, created_by: str, email: str | None, days: int | None
    ) -> tuple[str, Invite]:
        secret = self.hasher.new(INVITE_PREFIX)
        ttl = timedelta(days=days) if days else self.default_ttl
        invite = Invite(
            token_hash=secret.token_hash,
            key_id=secret.key_id,
            email=email,
            created_by=created_by,
            expires_at=utcnow() + ttl,
        )
        await UserRepository(session).add(invite)
        return secret.plaintext, invite

    async def list(self, session: AsyncSession) -> Sequence[Invite]:
        return await UserRepository(session).invites()

    async def revoke(self, session: AsyncSession, invite_id: str) -> None:
        invite = await UserRepository(session).invite(invite_id)
        if invite is None:
            raise NotFound("No such invite.")
        if invite.used_at is None and invite.revoked_at is None:
            invite.revoked_at = utcnow()
            await session.flush()

    async def usable(
        self, session: AsyncSession, token: SecretStr | None, email: str | None
    ) -> Invite:
        if token is None or not token.get_secret_value():
            raise InvalidInvite("Registration needs an invite; ask an administrator for one.")
        invite = await UserRepository(session).invite_by_hashes(
            self.hasher.candidates(token.get_secret_value())
        )
        if invite is None:
            raise InvalidInvite("This invite is not valid.")
        status = invite_status(invite)
        if status != "pending":
            raise InvalidInvite(f"This invite has been {status}; ask for a new one.")
        if invite.email is not None and invite.email != email:
            raise InvalidInvite("This invite is for another email address.")
        return invite

    async def claim(self, session: AsyncSession, invite: Invite, user_id: str) -> None:
        if not await UserRepository(session).claim_invite(invite.id, user_id, utcnow()):
            # A concurrent registration used it first; the caller's transaction rolls back.
            raise InvalidInvite("This invite has just been used; ask for a new one.")
