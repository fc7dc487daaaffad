"""Accounts: the admin row, registration, login/logout, passwords and profiles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.login_tokens import IssuedLogin, LoginTokens
from pluggably.auth.passwords import PasswordHasher, check_password_policy
from pluggably.auth.principal import Principal
from pluggably.auth.throttle import LoginThrottle
from pluggably.db import utcnow
from pluggably.errors import (
    Conflict,
    InvalidParameter,
    ModelNotFound,
    Unauthorized,
    UnsupportedProvider,
    ValidationFailed,
)
from pluggably.users import invites
from pluggably.users.models import RevokedToken, User
from pluggably.users.repository import UserRepository
from pluggably.users.schemas import (
    RESERVED_USERNAMES,
    ChangePasswordRequest,
    LoginRequest,
    ProfileUpdate,
    RegisterRequest,
)
from pluggably.users.verifiers import active_account

ADMIN_SYSTEM_KEY = "admin"

# Resolves a model id the way a generate request's ``model`` is resolved; raises
# ModelNotFound or UnsupportedProvider for one that no request could use.
ModelCheck = Callable[[AsyncSession, str], Awaitable[object]]


async def forget_expired_revocations(session: AsyncSession) -> int:
    return await UserRepository(session).forget_expired_revocations(utcnow())


async def ensure_admin_user(session: AsyncSession) -> User:
    """The row that the bootstrap admin key and local-only callers act as.

    Idempotent, and safe when several replicas start at once: a lost insert race is
    resolved by reading the winner's row.
    """
    repo = UserRepository(session)
    user = await repo.by_system_key(ADMIN_SYSTEM_KEY)
    if user is not None:
        return user
    user = User(
        username="admin",
        display_name="Administrator",
        role="admin",
        system_key=ADMIN_SYSTEM_KEY,
        preferences={},
    )
    try:
        async with session.begin_nested():
            await repo.add(user)
    except IntegrityError:
        existing = await repo.by_system_key(ADMIN_SYSTEM_KEY)
        if existing is None:
            raise
        return existing
    return user


def _policy_error(reason: str, field: str) -> ValidationFailed:
    return ValidationFailed(
        f"The password {reason}.",
        details=[{"loc": ["body", field], "msg": f"password {reason}", "type": "password_policy"}],
    )


@dataclass
class AccountService:
    passwords: PasswordHasher
    login_tokens: LoginTokens
    throttle: LoginThrottle
    invites: invites.InviteService
    registration_open: bool
    check_model: ModelCheck

    async def create_user(
        self,
        session: AsyncSession,
        *,
        username: str | None,
        email: str | None,
        password: str,
        display_name: str | None = None,
        role: str = "user",
    ) -> User:
        if username in RESERVED_USERNAMES:
            raise Conflict(f"The username '{username}' is reserved.")
        reason = check_password_policy(password, username, email)
        if reason:
            raise _policy_error(reason, "password")
        repo = UserRepository(session)
        if await repo.taken(username, email):
            raise Conflict("That username or email is already registered.")
        user = User(
            username=username,
            email=email,
            display_name=display_name,
            role=role,
            password_hash=await self.passwords.hash(password),
            preferences={},
        )
        try:
            async with session.begin_nested():
                await repo.add(user)
        except IntegrityError:  # a concurrent registration took the name
            raise Conflict("That username or email is already registered.") from None
        return user

    async def register(self, session: AsyncSession, body: RegisterRequest, address: str) -> User:
        """The invite is checked before anything about the username or email, so only
        the holder of a valid invite (or anyone, when registration is open) learns
        that a name is taken; failures are throttled per client address."""
        self.throttle.registration(address)
        invite = None
        given = body.invite_token is not None and body.invite_token.get_secret_value() != ""
        if not self.registration_open or given:
            invite = await self.invites.usable(session, body.invite_token, body.email)
        user = await self.create_user(
            session,
            username=body.username,
            email=body.email,
            password=body.password.get_secret_value(),
            display_name=body.display_name,
        )
        if invite is not None:
            await self.invites.claim(session, invite, user.id)
        self.throttle.registered(address)
        return user

    async def login(
        self, session: AsyncSession, body: LoginRequest, address: str
    ) -> tuple[IssuedLogin, User]:
        # Throttled by the identifier as typed, before the lookup: the throttle answers
        # alike whether or not it names an account, and a paced attempt waits without
        # holding a database connection. Once resolved, the attempt also counts under
        # the account, so its username and email share one budget.
        name = body.identifier
        await self.throttle.attempt(name, address)
        user = await UserRepository(session).by_login(name)
        account = f"account:{user.id}" if user is not None else None
        if account is not None:
            self.throttle.attempt_on_account(account, address)
        stored = user.password_hash if user is not None and user.is_active else None
        if not await self.passwords.verify(stored, body.password.get_secret_value()):
            raise Unauthorized("Wrong username, email or password.")
        assert user is not None
        aliases = [alias.casefold() for alias in (user.username, user.email) if alias]
        self.throttle.succeeded(name, address, account=account, aliases=aliases)
        user.last_login_at = utcnow()
        await session.flush()
        return self.login_tokens.issue(user.id, user.login_generation), user

    async def logout(self, session: AsyncSession, principal: Principal) -> None:
        if principal.via != "login" or principal.credential_id is None:
            raise InvalidParameter(
                "Logout revokes login tokens; revoke an API token with "
                "DELETE /v1/users/tokens/{id}."
            )
        repo = UserRepository(session)
        if await repo.is_revoked(principal.credential_id):
            return
        revoked = RevokedToken(
            jti=principal.credential_id,
            user_id=principal.user_id,
            expires_at=principal.credential_expires_at or utcnow(),
        )
        try:
            async with session.begin_nested():
                await repo.add(revoked)
        except IntegrityError:
            pass  # a concurrent logout with the same token revoked it already

    async def change_password(
        self,
        session: AsyncSession,
        principal: Principal,
        body: ChangePasswordRequest,
        address: str,
    ) -> None:
        # Throttled before any database work: a paced attempt must not wait while
        # holding a pooled connection.
        account = f"password-change:{principal.user_id}"
        await self.throttle.attempt(account, address)
        user = await self.profile(session, principal)
        if not await self.passwords.verify(
            user.password_hash, body.current_password.get_secret_value()
        ):
            # Not 401: the credential is fine, and clients log out on a 401.
            raise InvalidParameter("The current password is wrong.")
        self.throttle.succeeded(account, address)
        new = body.new_password.get_secret_value()
        reason = check_password_policy(new, user.username, user.email)
        if reason:
            raise _policy_error(reason, "new_password")
        user.password_hash = await self.passwords.hash(new)
        # Every other login token of this user stops working on its next use.
        user.login_generation += 1
        user.logins_kept_jti = principal.credential_id if principal.via == "login" else None
        await session.flush()

    async def profile(self, session: AsyncSession, principal: Principal) -> User:
        return active_account(await UserRepository(session).get(principal.user_id))

    async def update_profile(
        self, session: AsyncSession, principal: Principal, patch: ProfileUpdate
    ) -> User:
        user = await self.profile(session, principal)
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("preferred_model") is not None:
            await self._check_preferred_model(session, changes["preferred_model"])
        for field, value in changes.items():
            setattr(user, field, value if field != "preferences" else (value or {}))
        await session.flush()
        return user

    async def _check_preferred_model(self, session: AsyncSession, model: str) -> None:
        """Any id a request's ``model`` could name: a registry id (``GET /v1/models``),
        ``local:<id>``, ``provider:model`` or a vendor's model name."""
        try:
            await self.check_model(session, model)
        except (ModelNotFound, UnsupportedProvider) as exc:
            raise ValidationFailed(
                f"Unknown model '{model}': {exc.message}",
                details=[
                    {
                        "loc": ["body", "preferred_model"],
                        "msg": "unknown model",
                        "type": "model_not_found",
                    }
                ],
            ) from None
