"""Credential verifiers for the credentials users own: API tokens, login tokens,
and external identity-provider tokens mapped onto users."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from pluggably.auth.external import ExternalJwtDecoder
from pluggably.auth.login_tokens import ISSUER, LoginTokens, looks_like_jwt, unverified_issuer
from pluggably.auth.principal import ALL_SCOPES, Principal, Scope
from pluggably.auth.token_hash import TokenHasher
from pluggably.db import Database, utcnow
from pluggably.errors import Unauthorized
from pluggably.usage.limits import Limits
from pluggably.users.models import User
from pluggably.users.repository import UserRepository

API_TOKEN_PREFIX = "plg"  # noqa: S105
# last_used_at is refreshed at most this often: no write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def active_account(user: User | None) -> User:
    """Read on every request, never cached: disabling an account (or changing its role)
    applies to its very next request."""
    if user is None:
        raise Unauthorized("The account behind this credential no longer exists.")
    if not user.is_active:
        raise Unauthorized("This account is disabled; ask an administrator.")
    return user


class ApiTokenVerifier:
    def __init__(self, db: Database, hasher: TokenHasher) -> None:
        self.db, self.hasher = db, hasher

    async def verify(self, credential: str) -> Principal | None:
        if not credential.startswith(API_TOKEN_PREFIX + "_"):
            return None
        candidates = self.hasher.candidates(credential)
        now = utcnow()
        async with self.db.session() as session:
            repo = UserRepository(session)
            found = await repo.token_by_hashes(candidates)
            if found is None and self.hasher.keyring.reload():  # rotated elsewhere
                found = await repo.token_by_hashes(self.hasher.candidates(credential))
            if found is None:
                raise Unauthorized("This API token is not valid.")
            token, user = found
            if token.revoked_at is not None:
                raise Unauthorized("This API token has been revoked.")
            if token.expires_at is not None and token.expires_at <= now:
                raise Unauthorized("This API token has expired; create a new one.")
            active_account(user)
            if token.key_id != self.hasher.keyring.active.key_id:
                moved = self.hasher.active_hash(credential)  # after a key rotation
                token.token_hash, token.key_id = moved.token_hash, moved.key_id
            if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
                token.last_used_at = now
            scopes = frozenset(Scope(s) for s in token.scopes)
            return Principal(
                user_id=user.id,
                role=user.role,
                scopes=scopes,
                via="api_token",
                credential_id=token.id,
                credential_expires_at=token.expires_at,
                # Stored validated at creation; most tokens have none (no parsing then).
                limits=Limits.model_validate(token.limits) if token.limits is not None else None,
            )


class LoginTokenVerifier:
    def __init__(self, db: Database, tokens: LoginTokens) -> None:
        self.db, self.tokens = db, tokens

    async def verify(self, credential: str) -> Principal | None:
        if not looks_like_jwt(credential) or unverified_issuer(credential) != ISSUER:
            return None
        claims = self.tokens.decode(credential)
        async with self.db.session() as session:
            repo = UserRepository(session)
            user = active_account(await repo.get(claims.user_id))
            if await repo.is_revoked(claims.jti):
                raise Unauthorized("This login token has been revoked; log in again.")
        if claims.generation != user.login_generation and claims.jti != user.logins_kept_jti:
            raise Unauthorized("The password changed since this login; log in again.")
        return Principal(
            user_id=user.id,
            role=user.role,
            scopes=ALL_SCOPES,
            via="login",
            credential_id=claims.jti,
            credential_expires_at=claims.expires_at,
        )


class ExternalJwtVerifier:
    def __init__(self, db: Database, decoder: ExternalJwtDecoder) -> None:
        self.db, self.decoder = db, decoder

    async def verify(self, credential: str) -> Principal | None:
        if not self.decoder.owns(credential):
            return None
        claims = self.decoder.decode(credential)
        async with self.db.session() as session:
            repo = UserRepository(session)
            user = await repo.by_external_subject(claims.subject)
            if user is None:
                if not self.decoder.settings.auto_provision:
                    raise Unauthorized(
                        "No Pluggably account is linked to this identity; ask an administrator."
                    )
                user = await self._provision(repo, claims.subject, claims.name)
            active_account(user)
        return Principal(user_id=user.id, role=user.role, scopes=ALL_SCOPES, via="external_jwt")

    @staticmethod
    async def _provision(repo: UserRepository, subject: str, name: str | None) -> User:
        user = User(external_subject=subject, display_name=name, role="user", preferences={})
        try:
            async with repo.session.begin_nested():
                await repo.add(user)
        except IntegrityError:  # another request provisioned it first
            existing = await repo.by_external_subject(subject)
            if existing is None:
                raise
            return existing
        return user
