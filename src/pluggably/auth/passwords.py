"""Password hashing with argon2id, off the event loop and with bounded parallelism,
so a burst of logins never starves other requests of CPU."""

from __future__ import annotations

import asyncio
import os

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(self, concurrency: int | None = None) -> None:
        # OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
        self._argon = Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
        # Leave one core to the event loop.
        self._slots = asyncio.Semaphore(concurrency or max(1, (os.cpu_count() or 2) - 1))
        self._dummy = self._argon.hash("pluggably-timing-equaliser")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._argon.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Constant work whether or not the account exists (``stored`` None)."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._argon.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def check_password_policy(password: str, *identifiers: str | None) -> str | None:
    """The reason a password is refused, or None when it is acceptable."""
    if len(password) < 10:
        return "must be at least 10 characters"
    if len(password) > 1024:
        return "must be at most 1024 characters"
    lowered = password.casefold()
    for ident in identifiers:
        if ident and lowered in {ident.casefold(), ident.split("@")[0].casefold()}:
            return "must not be your username or email"
    if len(set(password)) < 4:
        return "is too repetitive"
    return None
