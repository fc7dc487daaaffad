"""Throttling of password and registration attempts.

A stranger must not be able to lock an account's owner out, so nothing keyed by the
account alone ever refuses an attempt:

- failures per (account, client address) refuse that pair (``per_pair``);
- failures per client address, whatever the account, refuse that address
  (``per_address``: stops one address spraying guesses over many accounts);
- failures per account across all addresses only *slow* every attempt on it (a
  growing wait before the password check, capped at ``slowdown_max_s``): a right
  password from an address of its own still logs in.

Accounts are keyed by the identifier as typed, never by whether it names an account,
so the throttle answers alike for existing and unknown names (and does not tell that a
username and an email belong to one account).

In-process sliding windows: each replica throttles on its own, which bounds a
guessing attacker to (replicas x limit) tries per window. Memory is bounded: each of
the four maps holds at most ``max_tracked`` keys (least recently failed evicted first,
and keys whose failures have all left the window dropped as new ones arrive), a key is
a 16-byte digest whatever the name's length, and it keeps at most its limit's
timestamps: under 20 MB per full map at the default 50,000 keys. Filling a map to
evict a key takes as many attempts, from ``max_tracked / per_address`` addresses at
least, as it would take to make them guesses.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from pluggably.errors import RateLimited

MAX_TRACKED = 50_000
# The first wait on a slowed account; each further failure doubles it up to the cap.
_FIRST_DELAY_S = 0.25


class _Windows:
    """Failure timestamps per key within a sliding window, least recently failed
    first. Not locked: only the event loop's thread touches it, between awaits."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float], max_tracked: int
    ) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._max_tracked = max_tracked
        # Keys are 16-byte digests, whatever their length; timestamps oldest first.
        self._fails: OrderedDict[bytes, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._fails)

    def count(self, key: str) -> int:
        fails = self._prune(_digest(key))
        return 0 if fails is None else len(fails)

    def retry_after(self, key: str) -> int | None:
        fails = self._prune(_digest(key))
        if fails is None or len(fails) < self.limit:
            return None
        return max(1, math.ceil(fails[0] + self.window_s - self.clock()))

    def record(self, key: str) -> None:
        self._drop_expired()
        digest = _digest(key)
        fails = self._prune(digest)
        if fails is None:
            fails = self._fails[digest] = []
            if len(self._fails) > self._max_tracked:
                self._fails.popitem(last=False)
        if len(fails) >= self.limit:
            # Beyond ``limit`` failures only the newest matter: refusal and delay
            # depend on the count up to the limit and on when the oldest kept expires.
            del fails[0]
        fails.append(self.clock())
        self._fails.move_to_end(digest)

    def clear(self, key: str) -> None:
        self._fails.pop(_digest(key), None)

    def forgive(self, key: str) -> None:
        fails = self._fails.get(_digest(key))
        if fails:
            fails.pop()

    def _drop_expired(self) -> None:
        """Drop keys whose newest failure left the window (they sit at the front)."""
        horizon = self.clock() - self.window_s
        while self._fails:
            oldest = next(iter(self._fails.values()))
            if oldest and oldest[-1] > horizon:
                return
            self._fails.popitem(last=False)

    def _prune(self, digest: bytes) -> list[float] | None:
        fails = self._fails.get(digest)
        if fails is None:
            return None
        horizon = self.clock() - self.window_s
        expired = next((i for i, at in enumerate(fails) if at > horizon), len(fails))
        del fails[:expired]
        if not fails:
            del self._fails[digest]
            return None
        return fails


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def client_key(address: str) -> str:
    """The unit an address is throttled as: an IPv6 client by its /64, since one
    subscriber is routinely handed a whole /64 to pick addresses from."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


def _refused(wait: int, what: str) -> RateLimited:
    return RateLimited(f"Too many failed {what}; try again in {wait} seconds.", retry_after=wait)


class LoginThrottle:
    def __init__(
        self,
        per_pair: int,
        per_address: int,
        window_s: float,
        *,
        slowdown_after: int,
        slowdown_max_s: float,
        registrations_per_address: int = 10,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slowdown_after, self._slowdown_max_s, self._sleep = (
            slowdown_after,
            slowdown_max_s,
            sleep,
        )
        # Enough kept failures per account for the wait to reach its cap.
        doublings = math.ceil(math.log2(max(slowdown_max_s, _FIRST_DELAY_S) / _FIRST_DELAY_S))
        self._pairs = _Windows(per_pair, window_s, clock, max_tracked)
        self._addresses = _Windows(per_address, window_s, clock, max_tracked)
        self._accounts = _Windows(slowdown_after + doublings + 1, window_s, clock, max_tracked)
        self._registrations = _Windows(registrations_per_address, window_s, clock, max_tracked)

    def tracked(self) -> int:
        """Keys held over all maps (each map holds at most ``max_tracked``)."""
        maps = (self._pairs, self._addresses, self._accounts, self._registrations)
        return sum(len(m) for m in maps)

    async def attempt(self, account: str, address: str) -> None:
        """Count an attempt before the (slow) password check, or refuse it with 429;
        then wait as long as the account's failures from everywhere ask.

        Counting up front means concurrent guesses cannot all slip past the check
        while their hashes are still being verified. Call it before opening database
        work, so a slowed attempt holds no connection while it waits."""
        address = client_key(address)
        pair = f"{account}\x00{address}"
        waits = [self._pairs.retry_after(pair), self._addresses.retry_after(address)]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise _refused(wait, "attempts")
        delay = self._delay(self._accounts.count(account))
        self._pairs.record(pair)
        self._addresses.record(address)
        self._accounts.record(account)
        if delay:
            await self._sleep(delay)

    def succeeded(self, account: str, address: str) -> None:
        """The owner's own failures from this address are forgotten; the account's
        failures from elsewhere keep slowing it until they leave the window."""
        address = client_key(address)
        self._pairs.clear(f"{account}\x00{address}")
        self._addresses.forgive(address)
        self._accounts.forgive(account)

    def registration(self, address: str) -> None:
        """Count a registration attempt from ``address`` up front, or refuse it."""
        address = client_key(address)
        wait = self._registrations.retry_after(address)
        if wait is not None:
            raise _refused(wait, "registrations from this address")
        self._registrations.record(address)

    def registered(self, address: str) -> None:
        self._registrations.forgive(client_key(address))

    def _delay(self, failures: int) -> float:
        if failures < self._slowdown_after or self._slowdown_max_s <= 0:
            return 0.0
        excess = failures - self._slowdown_after
        return float(min(self._slowdown_max_s, _FIRST_DELAY_S * 2**excess))
