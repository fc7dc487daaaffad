"""All queries of the users domain."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.users.models import ApiToken, Invite, RevokedToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: User | ApiToken | Invite | RevokedToken) -> None:
        self.session.add(row)
        await self.session.flush()

    # users
    async def get(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def by_system_key(self, key: str) -> User | None:
        return await self.session.scalar(select(User).where(User.system_key == key))

    async def by_login(self, identifier: str) -> User | None:
        ident = identifier.casefold()
        return await self.session.scalar(
            select(User).where(or_(User.username == ident, User.email == ident))
        )

    async def by_external_subject(self, subject: str) -> User | None:
        return await self.session.scalar(select(User).where(User.external_subject == subject))

    async def taken(self, username: str | None, email: str | None) -> bool:
        conditions = []
        if username:
            conditions.append(User.username == username)
        if email:
            conditions.append(User.email == email)
        if not conditions:
            return False
        return (
            await self.session.scalar(select(User.id).where(or_(*conditions)).limit(1)) is not None
        )

    async def page(
        self, *, after: tuple[datetime, str] | None, search: str | None, limit: int
    ) -> Sequence[User]:
        """Up to ``limit`` accounts, oldest first (``created_at``, then id), strictly
        after the keyset ``after``; ``search`` matches a part of the username, email or
        display name, case-insensitively (``%`` and ``_`` in it are literal)."""
        query = select(User)
        if search is not None:
            query = query.where(
                or_(
                    *(
                        column.icontains(search, autoescape=True)
                        for column in (User.username, User.email, User.display_name)
                    )
                )
            )
        if after is not None:
            made, last_id = after
            query = query.where(
                or_(User.created_at > made, and_(User.created_at == made, User.id > last_id))
            )
        query = query.order_by(User.created_at, User.id).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def other_active_admins(self, user_id: str, *, with_system: bool) -> int:
        """Active administrators besides ``user_id``; the server's own rows count only
        ``with_system``. Every such row, ``user_id``'s too, is locked in id order
        (PostgreSQL): of two admins demoting each other at once, the second waits and
        then counts the first one's change."""
        query = select(User.id).where(User.role == "admin", User.is_active.is_(True))
        if not with_system:
            query = query.where(User.system_key.is_(None))
        found = (await self.session.execute(query.order_by(User.id).with_for_update())).scalars()
        return sum(1 for found_id in found if found_id != user_id)

    # API tokens
    async def token_by_hashes(self, hashes: Iterable[str]) -> tuple[ApiToken, User] | None:
        query = (
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash.in_(list(hashes)))
        )
        row = (await self.session.execute(query)).first()
        return (row[0], row[1]) if row else None

    async def tokens_of(self, user_id: str) -> Sequence[ApiToken]:
        query = (
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.created_at.desc(), ApiToken.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def token_of(self, user_id: str, token_id: str) -> ApiToken | None:
        query = select(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
        )
        return await self.session.scalar(query)

    # revoked login tokens
    async def is_revoked(self, jti: str) -> bool:
        return await self.session.get(RevokedToken, jti) is not None

    async def forget_expired_revocations(self, now: datetime) -> int:
        """Revocations of tokens that have expired anyway are dead weight."""
        result = await self.session.execute(
            delete(RevokedToken).where(RevokedToken.expires_at < now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # invites
    async def invite_by_hashes(self, hashes: Iterable[str]) -> Invite | None:
        return await self.session.scalar(select(Invite).where(Invite.token_hash.in_(list(hashes))))

    async def claim_invite(self, invite_id: str, user_id: str, now: datetime) -> bool:
        """Mark an invite used, atomically: only one registration can win it."""
        query = (
            update(Invite)
            .where(
                Invite.id == invite_id,
                Invite.used_at.is_(None),
                Invite.revoked_at.is_(None),
                Invite.expires_at > now,
            )
            .values(used_at=now, used_by=user_id)
        )
        result = await self.session.execute(query)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def invites(self) -> Sequence[Invite]:
        query = select(Invite).order_by(Invite.created_at.desc(), Invite.id)
        return (await self.session.execute(query)).scalars().all()

    async def invite(self, invite_id: str) -> Invite | None:
        return await self.session.get(Invite, invite_id)
