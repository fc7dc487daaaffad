"""Throttling of password attempts per account and per client address.

In-process sliding windows: each replica throttles on its own, which bounds a
guessing attacker to (replicas x limit) tries per window.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from pluggably.errors import RateLimited

_MAX_TRACKED = 100_000


class _Windows:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        fails = self._prune(key)
        if fails is None or len(fails) < self.limit:
            return None
        return max(1, math.ceil(fails[0] + self.window_s - self.clock()))

    def record(self, key: str) -> None:
        fails = self._prune(key)
        if fails is None:
            fails = self._fails[key] = deque()
            if len(self._fails) > _MAX_TRACKED:
                self._fails.popitem(last=False)
        fails.append(self.clock())
        self._fails.move_to_end(key)

    def clear(self, key: str) -> None:
        self._fails.pop(key, None)

    def forgive(self, key: str) -> None:
        fails = self._fails.get(key)
        if fails:
            fails.pop()

    def _prune(self, key: str) -> deque[float] | None:
        fails = self._fails.get(key)
        if fails is None:
            return None
        horizon = self.clock() - self.window_s
        while fails and fails[0] <= horizon:
            fails.popleft()
        if not fails:
            del self._fails[key]
            return None
        return fails


class LoginThrottle:
    def __init__(
        self,
        per_account: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = _Windows(per_account, window_s, clock)
        self._addresses = _Windows(per_address, window_s, clock)

    def attempt(self, account: str, address: str) -> None:
        """Count an attempt before the (slow) password check, or refuse it with 429.

        Counting up front means concurrent guesses cannot all slip past the check
        while their hashes are still being verified."""
        waits = [self._accounts.retry_after(account), self._addresses.retry_after(address)]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise RateLimited(
                f"Too many failed attempts; try again in {wait} seconds.", retry_after=wait
            )
        self._accounts.record(account)
        self._addresses.record(address)

    def succeeded(self, account: str, address: str) -> None:
        self._accounts.clear(account)
        self._addresses.forgive(address)
