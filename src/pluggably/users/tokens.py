"""Users' API tokens: created with a secret shown once, listed without it, revoked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.auth.token_hash import TokenHasher
from pluggably.db import utcnow
from pluggably.errors import Forbidden, InvalidParameter, NotFound
from pluggably.usage.limits import Limits, strictest, wider_fields
from pluggably.users.admin import effective_limits, to_column
from pluggably.users.models import ApiToken
from pluggably.users.repository import UserRepository
from pluggably.users.schemas import TokenCreate
from pluggably.users.verifiers import API_TOKEN_PREFIX, active_account


@dataclass
class TokenService:
    hasher: TokenHasher

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        body: TokenCreate,
        default_limits: Limits | None = None,
    ) -> tuple[str, ApiToken]:
        """``default_limits`` is the server default, part of the owner's effective limits
        (unless the owner is an administrator) that the token's may not exceed."""
        scopes = sorted(set(body.scopes))
        if "admin" in scopes and not principal.is_admin:
            raise Forbidden("Only administrators can create tokens with the 'admin' scope.")
        limits = body.limits
        if limits is not None:
            await self._check_narrower(session, principal, limits, default_limits)
        if principal.limits is not None:
            # Made with a limited token: the new one keeps that token's limits too.
            limits = strictest(principal.limits, limits)
        secret = self.hasher.new(API_TOKEN_PREFIX)
        token = ApiToken(
            user_id=principal.user_id,
            name=body.name,
            prefix=secret.plaintext[:12],
            token_hash=secret.token_hash,
            key_id=secret.key_id,
            scopes=scopes,
            limits=to_column(limits) if limits is not None else None,
            expires_at=utcnow() + timedelta(days=body.expires_days) if body.expires_days else None,
        )
        await UserRepository(session).add(token)
        return secret.plaintext, token

    @staticmethod
    async def _check_narrower(
        session: AsyncSession, principal: Principal, limits: Limits, default: Limits | None
    ) -> None:
        """The owner's effective limits, and those of the token this request came with
        (if any), bound the new token's. A field the token leaves unset is not wider:
        the owner's limit keeps applying to every request of theirs."""
        owner = active_account(await UserRepository(session).get(principal.user_id))
        bound = strictest(effective_limits(owner, default), principal.limits)
        given = limits.model_dump(exclude_none=True)
        if "budget_usd" in given:
            given["budget_period"] = limits.period
        wider = wider_fields(bound.model_copy(update=given), bound)
        if wider:
            raise InvalidParameter(
                "A token's limits can only narrow yours; these would be wider: "
                + ", ".join(wider)
                + f". Your limits: {bound.model_dump_json(exclude_none=True)}.",
                details=[
                    {"loc": ["body", "limits", name], "msg": "wider than the owner's"}
                    for name in wider
                ],
            )

    async def list(self, session: AsyncSession, principal: Principal) -> Sequence[ApiToken]:
        return await UserRepository(session).tokens_of(principal.user_id)

    async def revoke(self, session: AsyncSession, principal: Principal, token_id: str) -> ApiToken:
        token = await UserRepository(session).token_of(principal.user_id, token_id)
        if token is None:
            raise NotFound("No such API token.")
        token.revoked_at = utcnow()
        await session.flush()
        return token
