"""Who is calling: each caller's profile and credential snapshot, read at most every
couple of seconds (two queries a request were a measurable share of the gateway's
time in bench/overhead.py). Changes through this server invalidate at once; other
replicas see them within the TTL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialService, CredentialSnapshot
from pluggably.usage.limits import Limits
from pluggably.users.service import AccountService


@dataclass(frozen=True)
class CallerProfile:
    username: str | None
    preferred_model: str | None
    limits: Limits | None = None  # what an administrator set on this user


@dataclass
class CallerCache:
    accounts: AccountService
    credentials: CredentialService
    ttl_s: float = 2.0
    max_callers: int = 10_000
    _entries: dict[str, tuple[float, CallerProfile, CredentialSnapshot]] = field(
        default_factory=dict
    )
    # One read per caller at a time: when an entry expires under load, the caller's
    # concurrent requests wait for that read instead of each queueing its own.
    _reading: dict[str, asyncio.Future[tuple[CallerProfile, CredentialSnapshot]]] = field(
        default_factory=dict
    )

    async def get(
        self, session: AsyncSession, principal: Principal
    ) -> tuple[CallerProfile, CredentialSnapshot]:
        user_id = principal.user_id
        while True:
            cached = self._entries.get(user_id)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1], cached[2]
            reading = self._reading.get(user_id)
            if reading is None:
                break
            try:
                return await asyncio.shield(reading)
            except asyncio.CancelledError:
                if not reading.cancelled():  # this request itself was cancelled
                    raise
                # the request that was reading went away: read again
        future = self._reading[user_id] = asyncio.get_running_loop().create_future()
        try:
            user = await self.accounts.profile(session, principal)
            limits = Limits.model_validate(user.limits) if user.limits else None
            profile = CallerProfile(user.username, user.preferred_model, limits)
            snapshot = await self.credentials.snapshot(session, principal, user.username)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            if self._reading.get(user_id) is future:
                del self._reading[user_id]
        future.set_result((profile, snapshot))
        if len(self._entries) >= self.max_callers:
            self._entries.clear()
        self._entries[user_id] = (time.monotonic() + self.ttl_s, profile, snapshot)
        return profile, snapshot

    def forget(self, user_id: str) -> None:
        self._entries.pop(user_id, None)
        self._reading.pop(user_id, None)  # a read begun before the change is not reused
