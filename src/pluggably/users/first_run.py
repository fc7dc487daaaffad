"""First run: a server with no administrator account and no admin key offers a
one-time setup link (logged at startup) whose page creates the first administrator.

The token lives in this process only: it is made at startup when it is needed, shown
once in the log, and spent when the first administrator is created. Another server
process (a replica, a restart) makes its own; any of them refuses once an
administrator exists, whichever way it was created.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.config import Settings
from pluggably.db import Database
from pluggably.errors import InvalidInvite
from pluggably.users.models import User
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


def new_token() -> str:
    return secrets.token_urlsafe(32)


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
    """The setup token and the creation of the first administrator.

    The setup is its own unit of work, committed under the lock: the token is spent
    only once an administrator is stored, and two setups at once in this process
    cannot both pass the checks."""

    def __init__(self, db: Database, accounts: AccountService, token: str | None) -> None:
        self._db, self._accounts = db, accounts
        self._token = token
        # Protects _token between its check and its spending (create_admin).
        self._lock = asyncio.Lock()

    @property
    def token(self) -> str | None:
        return self._token

    async def required(self) -> bool:
        """True while this server's setup link works (no administrator yet)."""
        if self._token is None:
            return False
        async with self._db.session() as session:
            if await admin_people(session) > 0:  # made meanwhile (the CLI, a replica)
                self._token = None
        return self._token is not None

    async def create_admin(self, body: SetupRequest) -> User:
        async with self._lock:
            if self._token is None:
                raise _already_done()
            given = body.token.get_secret_value().encode()
            if not hmac.compare_digest(given, self._token.encode()):
                raise InvalidInvite(
                    "This setup link is not valid: use the link from the server's log."
                )
            async with self._db.session() as session:
                if await admin_people(session) > 0:
                    self._token = None
                    raise _already_done()
                user = await self._accounts.create_user(
                    session,
                    username=body.username,
                    email=None,
                    password=body.password.get_secret_value(),
                    display_name=body.display_name,
                    role="admin",
                )
            self._token = None
            return user


def _already_done() -> InvalidInvite:
    return InvalidInvite("Setup is already complete: an administrator exists. Sign in instead.")
