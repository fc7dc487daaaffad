"""The login throttle's facts shared between replicas (auth/throttle.py): each change
one replica counts is broadcast, as digests, and applied by every other, so a guesser
gains nothing by switching replica."""

from __future__ import annotations

import asyncio
from typing import Any

from pluggably.auth.throttle import LoginThrottle
from pluggably.cluster.bus import Bus, Message
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.cluster")
KINDS = frozenset("acsrg")


class ThrottleShare:
    def __init__(self, bus: Bus, throttle: LoginThrottle) -> None:
        self.bus, self.throttle = bus, throttle
        self._sending: set[asyncio.Task[bool]] = set()
        throttle.share = self._send
        bus.handlers["throttle"] = self._receive

    async def close(self) -> None:
        self.throttle.share = None
        await asyncio.gather(*self._sending, return_exceptions=True)

    def _send(self, fact: list[Any]) -> None:
        """Broadcast in the order made (the bus sends one message at a time, FIFO)."""
        task = asyncio.ensure_future(self.bus.broadcast({"k": "throttle", "t": encode(fact)}))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _receive(self, message: Message) -> None:
        try:
            fact = decode(message["t"])
        except (KeyError, TypeError, ValueError):
            log.warning("throttle_fact_unreadable")
            return
        self.throttle.apply(fact)


def encode(fact: list[Any]) -> list[Any]:
    """Digests as hex; the kind and numbers as they are."""
    return [fact[0], *(_hex(part) for part in fact[1:])]


def _hex(part: Any) -> Any:
    if isinstance(part, bytes):
        return part.hex()
    if isinstance(part, list):
        return [_hex(item) for item in part]
    return part


def decode(raw: Any) -> list[Any]:
    """A fact as ``LoginThrottle.apply`` takes it; ValueError for anything else."""
    if not isinstance(raw, list) or not raw or raw[0] not in KINDS:
        raise ValueError("not a throttle fact")
    shapes = {"a": (str, str, str, float), "c": (str,), "s": (str, str, str, str, list)}
    shape = shapes.get(raw[0], (str,))
    parts = raw[1:]
    if len(parts) != len(shape):
        raise ValueError("a throttle fact of the wrong length")
    fact: list[Any] = [raw[0]]
    for part, kind in zip(parts, shape, strict=True):
        if kind is float:
            if not isinstance(part, (int, float)) or part < 0:
                raise ValueError("a bad spacing")
            fact.append(float(part))
        elif kind is list:
            if not isinstance(part, list) or len(part) > 16:
                raise ValueError("bad keys")
            fact.append([_digest(item) for item in part])
        else:
            fact.append(_digest(part))
    return fact


def _digest(part: Any) -> bytes:
    if not isinstance(part, str) or len(part) not in (0, 32):
        raise ValueError("not a digest")
    return bytes.fromhex(part)
