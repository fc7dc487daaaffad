"""Throttling of password and registration attempts.

A stranger must not be able to lock an account's owner out, yet must not get more than
a bounded number of guesses at one account however many addresses it holds:

- failures per (name, client address) refuse that pair (``per_pair``);
- failures per client address, whatever the name, refuse that address
  (``per_address``: stops one address spraying guesses over many accounts);
- failures on a name from all addresses beyond ``slowdown_after`` *pace* it: each
  attempt takes the next turn, ``spacing`` after the previous one (0.25 s doubling up
  to ``slowdown_max_s``), so parallel attempts are spread out instead of all waiting
  together; one whose turn is more than ``max_wait_s`` off is refused (429) rather
  than queued;
- failures on a name from all addresses beyond ``per_account`` (at once, then as many
  per window: a leaky bucket) refuse every address *except* those the name logged in
  from within the last 30 days (the "device cookie" of OWASP, by address). Those are
  never paced either: the owner at a usual address always gets through. The price: an
  owner on a new address during an attack waits until the attack's failures drain.

Names are throttled as typed, before the lookup, so the throttle answers alike for
existing and unknown names. Once a name has resolved to an account, the attempt is
also counted under the account (``attempt_on_account``), so its username and email
share one ``per_account`` budget; that refusal can only come after ``per_account``
failures on the account, and is the one thing that can tell that a name and an email
belong together. Unknown names count under their typed key only.

Replicas share what they count: every change (an attempt counted, a turn taken, a
success, a registration) is also handed to ``share`` as a *fact* of digests only (no
name or address leaves the process in clear), which the cluster broadcasts; the
other replicas ``apply`` it to their own maps. Switching replica therefore gains an
attacker nothing beyond the few attempts in flight while a fact travels (a
millisecond or so); a replica that starts later knows only what happens from then on.
Memory is bounded: each map holds at most ``max_tracked``
keys, dropping keys that no longer matter as new ones arrive, a key is a 16-byte
digest whatever the name's length; a window keeps at most its ``limit`` timestamps
(5, 20 and 15 at the defaults), the account budgets and turns one float per key
whatever ``per_account`` is, and remembered addresses under 100 bytes per name: under
20 MB per full map at the default 50,000 keys. The account budgets keep accounts with
many failures apart: flooding them with fresh names evicts no attacked account.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sized
from typing import Any

from pluggably.auth.throttle_maps import Bucket, KnownAddresses, Pacer, Windows, digest
from pluggably.errors import RateLimited

MAX_TRACKED = 50_000
# The first spacing on a slowed name; each further failure doubles it up to the cap.
_FIRST_DELAY_S = 0.25
# An attempt whose turn on a slowed name is further off is refused, not queued.
MAX_WAIT_S = 30.0
# Addresses remembered per name, and for how long after their last login.
KNOWN_PER_NAME = 4
KNOWN_FOR_S = 30 * 24 * 3600.0


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
        per_account: int = 100,
        registrations_per_address: int = 10,
        max_tracked: int = MAX_TRACKED,
        max_wait_s: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slowdown_after, self._slowdown_max_s = slowdown_after, slowdown_max_s
        self._max_wait_s, self._sleep = max_wait_s, sleep
        # Enough kept failures per name for the spacing to reach its cap.
        doublings = math.ceil(math.log2(max(slowdown_max_s, _FIRST_DELAY_S) / _FIRST_DELAY_S))
        self._pairs = Windows(per_pair, window_s, clock, max_tracked)
        self._addresses = Windows(per_address, window_s, clock, max_tracked)
        self._slowed = Windows(slowdown_after + doublings + 1, window_s, clock, max_tracked)
        self._accounts = Bucket(per_account, window_s, clock, max_tracked)
        self._turns = Pacer(clock, max_tracked)
        self._known = KnownAddresses(KNOWN_PER_NAME, KNOWN_FOR_S, clock, max_tracked)
        self._registrations = Windows(registrations_per_address, window_s, clock, max_tracked)
        # Hands each change to the other replicas (cluster/); None: this process is alone.
        self.share: Callable[[list[Any]], None] | None = None

    def tracked(self) -> int:
        """Keys held over all maps (each map holds at most ``max_tracked``)."""
        maps: tuple[Sized, ...] = (
            self._pairs,
            self._addresses,
            self._slowed,
            self._accounts,
            self._turns,
            self._known,
            self._registrations,
        )
        return sum(len(m) for m in maps)

    async def attempt(self, name: str, address: str) -> None:
        """Count an attempt on ``name`` before the (slow) password check, or refuse it
        with 429; then wait for its turn if the name is paced.

        Counting up front means concurrent guesses cannot all slip past the check
        while their hashes are still being verified. Call it before opening database
        work, so a paced attempt holds no connection while it waits."""
        address = client_key(address)
        n, a, pair = digest(name), digest(address), digest(f"{name}\x00{address}")
        known = self._known.knows(n, a)
        waits = [self._pairs.retry_after(pair), self._addresses.retry_after(a)]
        if not known:
            waits.append(self._accounts.retry_after(n))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise _refused(wait, "attempts")
        spacing = 0.0 if known else self._turn_spacing(n)
        turn = self._change(["a", n, pair, a, spacing])
        if turn:
            await self._sleep(turn)

    def attempt_on_account(self, account: str, address: str) -> None:
        """Once the name has resolved to an account: count the attempt under the
        account too, or refuse it past ``per_account`` unless the account logged in
        from this address lately. Not paced: the caller holds a database connection."""
        acc = digest(account)
        if not self._known.knows(acc, digest(client_key(address))):
            wait = self._accounts.retry_after(acc)
            if wait is not None:
                raise _refused(wait, "attempts")
        self._change(["c", acc])

    def succeeded(
        self,
        name: str,
        address: str,
        *,
        account: str | None = None,
        aliases: Iterable[str] = (),
    ) -> None:
        """The owner's own failures from this address are forgotten, and the address
        is remembered for ``name``, ``account`` and the account's other names
        (``aliases``); failures from elsewhere keep counting until they drain."""
        address = client_key(address)
        n, a, pair = digest(name), digest(address), digest(f"{name}\x00{address}")
        acc = digest(account) if account is not None else b""
        keys = sorted({n, *(digest(alias) for alias in aliases), *([acc] if acc else [])})
        self._change(["s", n, pair, a, acc, keys])

    def registration(self, address: str) -> None:
        """Count a registration attempt from ``address`` up front, or refuse it."""
        a = digest(client_key(address))
        wait = self._registrations.retry_after(a)
        if wait is not None:
            raise _refused(wait, "registrations from this address")
        self._change(["r", a])

    def registered(self, address: str) -> None:
        self._change(["g", digest(client_key(address))])

    def apply(self, fact: list[Any]) -> float:
        """Apply one change, made here or on another replica (its digests as bytes);
        an attempt's answer is how long it waits for its turn."""
        kind = fact[0]
        if kind == "a":
            _, n, pair, a, spacing = fact
            self._pairs.record(pair)
            self._addresses.record(a)
            self._slowed.record(n)
            self._accounts.record(n)
            return self._turns.reserve(n, spacing) if spacing else 0.0
        if kind == "c":
            self._accounts.record(fact[1])
        elif kind == "s":
            _, n, pair, a, acc, keys = fact
            self._pairs.clear(pair)
            self._addresses.forgive(a)
            self._slowed.forgive(n)
            self._accounts.forgive(n)
            if acc:
                self._accounts.forgive(acc)
            for key in keys:
                self._known.remember(key, a)
        elif kind == "r":
            self._registrations.record(fact[1])
        elif kind == "g":
            self._registrations.forgive(fact[1])
        return 0.0

    def _change(self, fact: list[Any]) -> float:
        answer = self.apply(fact)
        if self.share is not None:
            self.share(fact)
        return answer

    def _turn_spacing(self, name: bytes) -> float:
        """The spacing of the next turn on a paced name (0 when it is not paced); a
        turn further off than ``max_wait_s`` is refused."""
        spacing = self._spacing(self._slowed.count(name))
        if not spacing:
            return 0.0
        ahead = self._turns.wait(name)
        if ahead > self._max_wait_s:
            wait = max(1, math.ceil(ahead - self._max_wait_s))
            raise RateLimited(
                f"Too many attempts on this name are waiting; try again in {wait} seconds.",
                retry_after=wait,
            )
        return spacing

    def _spacing(self, failures: int) -> float:
        if failures < self._slowdown_after or self._slowdown_max_s <= 0:
            return 0.0
        excess = failures - self._slowdown_after
        return float(min(self._slowdown_max_s, _FIRST_DELAY_S * 2**excess))
