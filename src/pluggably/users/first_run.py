"""First run: a server with no administrator account and no admin key offers a
one-time setup link (logged at startup) whose page creates the first administrator.

Each start that finds no administrator makes a token, logs its link once and stores
its hash in ``setup_tokens``, the table replicas share: a link logged by one replica
works through any (behind a load balancer the setup page may reach another). Creating
the first administrator deletes every stored token in the same transaction, so two
setups at once (two replicas, two tabs) cannot both succeed: the second finds its
token gone. Any of them refuses once an administrator exists, however it was created.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.config import Settings
from pluggably.db import Database, utcnow
from pluggably.errors import InvalidInvite
from pluggably.users.models import SetupToken, User
from pluggably.users.repository import UserRepository
from pluggably.users.schemas import USERNAME
from pluggably.users.service import AccountService

SETUP_PATH = "/ui/setup"


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    token: SecretStr = Field(max_length=256, description="The token of the logged setup link.")
    username: str = Field(description="3-64 characters: letters, digits, '_', '.', '-'.")
    password: SecretStr = Field(max_length=1024, description="At least 10 characters.")
    display_name: str | None = Field(default=None, max_length=200)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        value = value.casefold()
        if not USERNAME.match(value):
            raise ValueError(
                "3-64 characters: letters, digits, '_', '.', '-'; starting alphanumeric"
            )
        return value


async def admin_people(session: AsyncSession) -> int:
    """Active administrators that are people (not the server's own admin row)."""
    return await UserRepository(session).other_active_admins("", with_system=False)


async def setup_needed(session: AsyncSession, settings: Settings) -> bool:
    """No one could administer this server: no admin key, not local-only, and no
    administrator account."""
    if settings.admin_key is not None or settings.local_only:
        return False
    return await admin_people(session) == 0


async def start_setup(session: AsyncSession, settings: Settings) -> str | None:
    """At startup: a new setup token (stored hashed) when no one could administer the
    server; otherwise None, and tokens left from earlier starts are forgotten."""
    if not await setup_needed(session, settings):
        await session.execute(delete(SetupToken))
        return None
    token = secrets.token_urlsafe(32)
    await session.execute(insert(SetupToken).values(token_hash=_digest(token), created_at=utcnow()))
    return token


def _digest(token: str) -> str:
    """256 random bits need no salt or stretching: SHA-256 is enough to store."""
    return hashlib.sha256(token.encode()).hexdigest()


def setup_link(settings: Settings, token: str) -> str:
    """The link on this machine: a wildcard bind is reached through loopback."""
    host = settings.host
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 (a comparison, not a bind)
        host = "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name, such as localhost
    return f"http://{host}:{settings.port}{SETUP_PATH}?token={token}"


class FirstRun:
    """The creation of the first administrator through a setup link. ``token`` is
    this process's own link's token, for the startup log."""

    def __init__(self, db: Database, accounts: AccountService, token: str | None) -> None:
        self._db, self._accounts = db, accounts
        self.token = token

    async def required(self) -> bool:
        """True while a setup link works (no administrator yet)."""
        async with self._db.session() as session:
            if not await session.scalar(select(exists().select_from(SetupToken))):
                return False
            return await admin_people(session) == 0

    async def create_admin(self, body: SetupRequest) -> User:
        """One transaction: spend every setup token, check the given one was among
        them and that no administrator exists, create the administrator."""
        given = _digest(body.token.get_secret_value())
        async with self._db.session() as session:
            # Row locks: a concurrent setup waits here, then finds no token left.
            spent = (
                (await session.execute(delete(SetupToken).returning(SetupToken.token_hash)))
                .scalars()
                .all()
            )
            if await admin_people(session) > 0:
                raise _already_done()
            if given not in spent:
                # The exception rolls the deletion back: valid links keep working.
                raise InvalidInvite(
                    "This setup link is not valid: use the link from the server's log."
                    if spent
                    else "This setup link is not valid: restart the server for a new one."
                )
            return await self._accounts.create_user(
                session,
                username=body.username,
                email=None,
                password=body.password.get_secret_value(),
                display_name=body.display_name,
                role="admin",
            )


def _already_done() -> InvalidInvite:
    return InvalidInvite("Setup is already complete: an administrator exists. Sign in instead.")
