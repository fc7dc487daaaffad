"""Who is calling: each caller's profile and credential snapshot, read at most every
couple of seconds (two queries a request were a measurable share of the gateway's
time in bench/overhead.py). Changes through this server invalidate at once; other
replicas see them within the TTL."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialService, CredentialSnapshot
from pluggably.users.service import AccountService


@dataclass(frozen=True)
class CallerProfile:
    username: str | None
    preferred_model: str | None


@dataclass
class CallerCache:
    accounts: AccountService
    credentials: CredentialService
    ttl_s: float = 2.0
    max_callers: int = 10_000
    _entries: dict[str, tuple[float, CallerProfile, CredentialSnapshot]] = field(
        default_factory=dict
    )

    async def get(
        self, session: AsyncSession, principal: Principal
    ) -> tuple[CallerProfile, CredentialSnapshot]:
        cached = self._entries.get(principal.user_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        user = await self.accounts.profile(session, principal)
        profile = CallerProfile(user.username, user.preferred_model)
        snapshot = await self.credentials.snapshot(session, principal, user.username)
        if len(self._entries) >= self.max_callers:
            self._entries.clear()
        self._entries[principal.user_id] = (now + self.ttl_s, profile, snapshot)
        return profile, snapshot

    def forget(self, user_id: str) -> None:
        self._entries.pop(user_id, None)
