"""The bounded in-memory maps the login throttle keeps (see ``throttle.py``).

Every map is keyed by a 16-byte digest whatever the key's length, holds at most
``max_tracked`` keys, and drops keys that no longer matter as new ones arrive. None is
locked: only the event loop's thread touches them, between awaits.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections import OrderedDict
from collections.abc import Callable

Key = str | bytes  # a key, or its digest already (as another replica shares it)


def digest(key: Key) -> bytes:
    if isinstance(key, bytes):
        return key
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


class Windows:
    """Failure timestamps per key within a sliding window, least recently failed first."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float], max_tracked: int
    ) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._max_tracked = max_tracked
        # Timestamps oldest first.
        self._fails: OrderedDict[bytes, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._fails)

    def count(self, key: Key) -> int:
        fails = self._prune(digest(key))
        return 0 if fails is None else len(fails)

    def retry_after(self, key: Key) -> int | None:
        fails = self._prune(digest(key))
        if fails is None or len(fails) < self.limit:
            return None
        return max(1, math.ceil(fails[0] + self.window_s - self.clock()))

    def record(self, key: Key) -> None:
        self._drop_expired()
        key_digest = digest(key)
        fails = self._prune(key_digest)
        if fails is None:
            fails = self._fails[key_digest] = []
            if len(self._fails) > self._max_tracked:
                self._fails.popitem(last=False)
        if len(fails) >= self.limit:
            # Beyond ``limit`` failures only the newest matter: refusal and delay
            # depend on the count up to the limit and on when the oldest kept expires.
            del fails[0]
        fails.append(self.clock())
        self._fails.move_to_end(key_digest)

    def clear(self, key: Key) -> None:
        self._fails.pop(digest(key), None)

    def forgive(self, key: Key) -> None:
        fails = self._fails.get(digest(key))
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

    def _prune(self, key_digest: bytes) -> list[float] | None:
        fails = self._fails.get(key_digest)
        if fails is None:
            return None
        horizon = self.clock() - self.window_s
        expired = next((i for i, at in enumerate(fails) if at > horizon), len(fails))
        del fails[:expired]
        if not fails:
            del self._fails[key_digest]
            return None
        return fails


class Bucket:
    """Failures per key as a leaky bucket: ``limit`` at once, then ``limit`` per
    window as it drains. One float per key (the time the bucket would be empty), so
    a large limit costs no memory, unlike a window of timestamps."""

    # Keys holding this share of the limit or more are kept apart (see __init__).
    _HEAVY_SHARE = 0.1

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float], max_tracked: int
    ) -> None:
        self.window_s, self.clock = window_s, clock
        self._interval = window_s / limit
        self._heavy_level = window_s * self._HEAVY_SHARE
        self._max_tracked = max_tracked
        # When each key's bucket would be empty, least recently failed first, in two
        # tiers of ``max_tracked`` keys each: flooding the light one with fresh names
        # evicts no attacked account from the heavy one; evicting one from there takes
        # ``max_tracked`` other keys holding a tenth of the limit each.
        self._light: OrderedDict[bytes, float] = OrderedDict()
        self._heavy: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._light) + len(self._heavy)

    def retry_after(self, key: Key) -> int | None:
        """Seconds until one more failure fits, or None when it fits now."""
        over = self._level(digest(key)) + self._interval - self.window_s
        return None if over <= 1e-9 else max(1, math.ceil(over))

    def record(self, key: Key) -> None:
        now = self.clock()
        for tier in (self._light, self._heavy):
            while tier and next(iter(tier.values())) <= now:
                tier.popitem(last=False)
        key_digest = digest(key)
        level = self._level(key_digest) + self._interval
        self._light.pop(key_digest, None)
        self._heavy.pop(key_digest, None)
        tier = self._heavy if level >= self._heavy_level else self._light
        tier[key_digest] = now + level
        if len(tier) > self._max_tracked:
            tier.popitem(last=False)

    def forgive(self, key: Key) -> None:
        key_digest = digest(key)
        for tier in (self._light, self._heavy):
            if key_digest in tier:
                tier[key_digest] -= self._interval

    def _level(self, key_digest: bytes) -> float:
        empty_at = self._heavy.get(key_digest, self._light.get(key_digest, 0.0))
        return max(0.0, empty_at - self.clock())


class Pacer:
    """When the next attempt on a key may go ahead: attempts on a slowed key are
    spaced, so parallel ones wait their turns instead of all waiting together."""

    def __init__(self, clock: Callable[[], float], max_tracked: int) -> None:
        self.clock = clock
        self._max_tracked = max_tracked
        # The earliest start of the next attempt per key; least recently paced first.
        self._next: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._next)

    def wait(self, key: Key) -> float:
        """How long an attempt starting now would wait for its turn."""
        return max(0.0, self._next.get(digest(key), 0.0) - self.clock())

    def reserve(self, key: Key, spacing: float) -> float:
        """Take the next turn on ``key``; answers how long to wait for it."""
        now = self.clock()
        while self._next and next(iter(self._next.values())) <= now:
            self._next.popitem(last=False)
        key_digest = digest(key)
        turn = max(now, self._next.get(key_digest, now))
        self._next[key_digest] = turn + spacing
        self._next.move_to_end(key_digest)
        if len(self._next) > self._max_tracked:
            self._next.popitem(last=False)
        return turn - now


# One remembered address: its digest and when it last logged in.
_RECORD = struct.Struct("<16sd")


class KnownAddresses:
    """The last few client addresses each name logged in from, for ``remember_s``.

    Per name, one bytes value of packed records (under 100 bytes at four addresses);
    names that logged in least recently are dropped first beyond ``max_tracked``."""

    def __init__(
        self, per_name: int, remember_s: float, clock: Callable[[], float], max_tracked: int
    ) -> None:
        self.per_name, self.remember_s, self.clock = per_name, remember_s, clock
        self._max_tracked = max_tracked
        self._addresses: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._addresses)

    def knows(self, name: Key, address: Key) -> bool:
        address_digest, horizon = digest(address), self.clock() - self.remember_s
        records = _RECORD.iter_unpack(self._addresses.get(digest(name), b""))
        return any(known == address_digest and at > horizon for known, at in records)

    def remember(self, name: Key, address: Key) -> None:
        now = self.clock()
        while self._addresses:
            newest = _RECORD.unpack_from(next(iter(self._addresses.values())))[1]
            if newest > now - self.remember_s:
                break
            self._addresses.popitem(last=False)
        name_digest, address_digest = digest(name), digest(address)
        others = [
            record
            for record in _RECORD.iter_unpack(self._addresses.get(name_digest, b""))
            if record[0] != address_digest
        ]
        # Newest first, so the first record says when the name last logged in.
        records = [(address_digest, now), *others][: self.per_name]
        self._addresses[name_digest] = b"".join(_RECORD.pack(*r) for r in records)
        self._addresses.move_to_end(name_digest)
        if len(self._addresses) > self._max_tracked:
            self._addresses.popitem(last=False)
