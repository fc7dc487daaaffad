"""Users' API tokens: created with a secret shown once, listed without it, revoked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.auth.token_hash import TokenHasher
from pluggably.db import utcnow
from pluggably.errors import Forbidden, NotFound
from pluggably.users.models import ApiToken
from pluggably.users.repository import UserRepository
from pluggably.users.schemas import TokenCreate
from pluggably.users.verifiers import API_TOKEN_PREFIX


@dataclass
class TokenService:
    hasher: TokenHasher

    async def create(
        self, session: AsyncSession, principal: Principal, body: TokenCreate
    ) -> tuple[str, ApiToken]:
        scopes = sorted(set(body.scopes))
        if "admin" in scopes and not principal.is_admin:
            raise Forbidden("Only administrators can create tokens with the 'admin' scope.")
        secret = self.hasher.new(API_TOKEN_PREFIX)
        token = ApiToken(
            user_id=principal.user_id,
            name=body.name,
            prefix=secret.plaintext[:12],
            token_hash=secret.token_hash,
            key_id=secret.key_id,
            scopes=scopes,
            expires_at=utcnow() + timedelta(days=body.expires_days) if body.expires_days else None,
        )
        await UserRepository(session).add(token)
        return secret.plaintext, token

    async def list(self, session: AsyncSession, principal: Principal) -> Sequence[ApiToken]:
        return await UserRepository(session).tokens_of(principal.user_id)

    async def revoke(self, session: AsyncSession, principal: Principal, token_id: str) -> ApiToken:
        token = await UserRepository(session).token_of(principal.user_id, token_id)
        if token is None:
            raise NotFound("No such API token.")
        token.revoked_at = utcnow()
        await session.flush()
        return token
