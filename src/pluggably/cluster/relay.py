"""A request followed or cancelled through a replica other than the one running it.

The asking replica (B) sends ``follow`` or ``cancel`` to the running one (A), naming
a subscription of its own; A answers on that subscription with ``ev`` messages:
events as compact lists (``["d", text]`` a text delta, ``["q", position, wait_ms]``,
``["l", model]``, ``["s", status]`` the final status, ``["x", found]`` the end of a
cancel's answer, ``["g"]`` gone: A does not run it). Deltas that arrive together are
sent together, so a fast stream costs a NOTIFY per batch, not per token. The messages
of a subscription are numbered: one lost (the bus reconnecting) ends a follow with the
record's status rather than relaying a text with a hole in it.

Every wait on the asking side is bounded: when A stops answering (dead, or a lost
message), the request's record decides (``check``), and a dead replica's records are
marked interrupted by a survivor within the lease (replicas.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pluggably.cluster.bus import MAX_PAYLOAD_BYTES, Bus, Message, encode
from pluggably.generation.events import LiveEvent, LoadingModel, QueuePosition, Status, TextDelta
from pluggably.generation.live import CANCEL_WAIT_S, TERMINAL, LiveRequest, LiveRequests
from pluggably.ids import new_id
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.cluster")
# Room for the message's own keys around the events it carries.
BATCH_BYTES = MAX_PAYLOAD_BYTES - 400
Item = list[Any]
_KINDS = frozenset("dsqlxg")  # the items A sends
LOST: Item = ["!"]  # put in a subscription's queue where a message is missing


class _Gone(Exception):
    """The replica named in the record does not run the request (any more)."""


class _Lost(Exception):
    """A message of the subscription never arrived: what follows would miss text."""


@dataclass
class _Subscription:
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    expected: int = 0  # the number of the next message


class RequestRelay:
    def __init__(self, bus: Bus, live: LiveRequests, replica_id: str, lease_s: float) -> None:
        self.bus, self.live, self.replica_id, self.lease_s = bus, live, replica_id, lease_s
        # The asking side's open follows and cancels, by subscription id.
        self._subscriptions: dict[str, _Subscription] = {}
        # The running side's work for other replicas, and its messages' next numbers.
        self._forwards: dict[str, asyncio.Task[None]] = {}
        self._numbers: dict[str, int] = {}
        bus.handlers.update(
            follow=self._on_follow,
            unfollow=self._on_unfollow,
            cancel=self._on_cancel,
            ev=self._on_ev,
        )

    async def close(self) -> None:
        tasks = list(self._forwards.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # the asking replica
    async def follow(
        self, replica_id: str, request_id: str, check: Callable[[], Awaitable[str]]
    ) -> AsyncIterator[LiveEvent]:
        """The live events of a request running on ``replica_id``: its text so far,
        then its deltas, ending with its final status. ``check`` reads the record's
        status, asked whenever the running replica stays silent for a lease."""
        sub, queue = self._subscribe()
        ended = False
        try:
            if not await self.bus.send(
                replica_id, {"k": "follow", "r": request_id, "s": sub, "f": self.replica_id}
            ):
                raise _Gone
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self.lease_s)
                except TimeoutError:
                    status = await check()
                    if status in TERMINAL:
                        ended = True
                        yield Status(request_id, status)
                        return
                    continue
                if item is LOST:
                    raise _Lost
                event = _decode(request_id, item)
                if event is None:  # gone
                    raise _Gone
                yield event
                if isinstance(event, Status):
                    ended = True
                    return
        except _Gone:
            ended = True
            yield Status(request_id, await _settled(check))
        except _Lost:  # the record tells the rest; the running replica stops sending
            log.warning("cluster_follow_lost", request_id=request_id, replica=replica_id)
            yield Status(request_id, await _settled(check))
        finally:
            self._subscriptions.pop(sub, None)
            if not ended:  # the listener left first: the running replica can stop sending
                await self.bus.send(replica_id, {"k": "unfollow", "s": sub})

    async def cancel(
        self, replica_id: str, request_id: str, check: Callable[[], Awaitable[str]]
    ) -> str | None:
        """Ask the running replica to cancel; the partial text once it has wound down,
        None when it does not run the request or did not answer in time. When it no
        longer runs it (it ended meanwhile), None comes once ``check`` (the record's
        status) shows the end: the caller answers with that, not a stale "running"."""
        sub, queue = self._subscribe()
        parts: list[str] = []
        try:
            message = {"k": "cancel", "r": request_id, "s": sub, "f": self.replica_id}
            if not await self.bus.send(replica_id, message):
                return None
            async with asyncio.timeout(CANCEL_WAIT_S + 1):
                while True:
                    item = await queue.get()
                    if item[0] == "d":
                        parts.append(item[1])
                    elif item[0] == "x":
                        if item[1]:
                            return "".join(parts)
                        break
        except TimeoutError:
            log.warning("cluster_cancel_unanswered", request_id=request_id, replica=replica_id)
            return None
        finally:
            self._subscriptions.pop(sub, None)
        await _settled(check)  # it ended there: its record shows how, once written
        return None

    def _subscribe(self) -> tuple[str, asyncio.Queue[Item]]:
        sub = new_id("sub")
        subscription = self._subscriptions[sub] = _Subscription()
        return sub, subscription.queue

    def _on_ev(self, message: Message) -> None:
        subscription = self._subscriptions.get(message.get("s", ""))
        if subscription is None:  # the listener already left
            return
        number = message.get("n")
        if number != subscription.expected:
            subscription.queue.put_nowait(LOST)
        subscription.expected = number + 1 if isinstance(number, int) else -1
        for item in message.get("e", []):
            if isinstance(item, list) and item and item[0] in _KINDS:
                subscription.queue.put_nowait(item)
            else:  # a follower must not fail on it (_decode would)
                log.warning("cluster_event_unreadable", item=type(item).__name__)

    # the running replica
    def _on_follow(self, message: Message) -> None:
        sub, to = message["s"], message["f"]
        live = self.live.find(message["r"])
        if live is None:
            self._spawn(sub, self._send(to, sub, [["g"]]))
            return
        # Unbounded: a delta dropped here would be missing from the relayed text for good
        # (a request's deltas are bounded by its answer; the forward drains them in batches).
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue()
        # The state so far and the listener together, here: a delta published before
        # the forward's first step would otherwise be both in the text so far and in
        # its queue (relayed twice), or in neither.
        first: list[Item] = []
        if live.status == "queued" and live.position is not None:
            first.append(["q", live.position, None])
        if live.parts:
            first.append(["d", live.partial_text])
        live.listeners.add(queue)
        self._spawn(sub, self._forward(live, queue, first, to, sub))

    def _on_unfollow(self, message: Message) -> None:
        task = self._forwards.pop(message.get("s", ""), None)
        if task is not None:
            task.cancel()

    def _on_cancel(self, message: Message) -> None:
        self._spawn(message["s"], self._cancel_here(message["r"], message["f"], message["s"]))

    def _spawn(self, sub: str, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._forwards[sub] = task
        task.add_done_callback(lambda _: self._forget(sub))

    def _forget(self, sub: str) -> None:
        self._forwards.pop(sub, None)
        self._numbers.pop(sub, None)

    async def _forward(
        self,
        live: LiveRequest,
        queue: asyncio.Queue[LiveEvent],
        first: list[Item],
        to: str,
        sub: str,
    ) -> None:
        try:
            pending = first
            while True:
                if not pending:
                    pending.append(_encode(await queue.get()))
                while not queue.empty():  # whatever else is there goes along
                    pending.append(_encode(queue.get_nowait()))
                final = pending[-1][0] == "s"
                await self._send(to, sub, pending)
                if final:
                    return
                pending = []
        finally:
            live.listeners.discard(queue)

    async def _cancel_here(self, request_id: str, to: str, sub: str) -> None:
        live = self.live.find(request_id)
        if live is None:
            await self._send(to, sub, [["x", False]])
            return
        await self.live.cancel(live)
        await self._send(to, sub, [["d", live.partial_text], ["x", True]])

    async def _send(self, to: str, sub: str, items: list[Item]) -> None:
        """``items`` in as few messages as fit, long texts split."""
        batch: list[Item] = []
        size = 0
        for item in _split(items):
            cost = len(encode(item).encode()) + 1
            if batch and size + cost > BATCH_BYTES:
                await self._send_one(to, sub, batch)
                batch, size = [], 0
            batch.append(item)
            size += cost
        if batch:
            await self._send_one(to, sub, batch)

    async def _send_one(self, to: str, sub: str, batch: list[Item]) -> None:
        # Numbered even when the send fails: the follower sees the gap.
        number = self._numbers.get(sub, 0)
        self._numbers[sub] = number + 1
        await self.bus.send(to, {"k": "ev", "s": sub, "n": number, "e": batch})


def _split(items: list[Item]) -> list[Item]:
    """Text deltas cut to fit a message (a character is at most 4 bytes, and JSON
    escapes a control character in 6)."""
    out: list[Item] = []
    limit = BATCH_BYTES // 6
    for item in items:
        if item[0] == "d":
            text = _sendable(item[1])
            out.extend(["d", text[i : i + limit]] for i in range(0, len(text), limit))
        else:
            out.append(item)
    return out


def _sendable(text: str) -> str:
    """``text`` as UTF-8 can carry it: an upstream's JSON may hold a lone surrogate
    (``"\\ud83d"``, half an emoji cut between two chunks), which no UTF-8 payload can
    hold; a pair whose halves meet in one text (the text so far) is joined again, a
    lone half becomes U+FFFD instead of failing the whole relay."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _encode(event: LiveEvent) -> Item:
    if isinstance(event, TextDelta):
        return ["d", event.text]
    if isinstance(event, Status):
        return ["s", event.status]
    if isinstance(event, QueuePosition):
        return ["q", event.position, event.estimated_wait_ms]
    return ["l", event.model]


def _decode(request_id: str, item: Item) -> LiveEvent | None:
    kind = item[0]
    if kind == "d":
        return TextDelta(item[1])
    if kind == "s":
        return Status(request_id, item[1])
    if kind == "q":
        return QueuePosition(request_id, item[1], item[2])
    if kind == "l":
        return LoadingModel(request_id, item[1])
    return None  # "g": gone


async def _settled(check: Callable[[], Awaitable[str]]) -> str:
    """The record's status once the running replica's last write has landed (its
    records are written in batches a few milliseconds apart)."""
    status = await check()
    for _ in range(20):
        if status in TERMINAL:
            break
        await asyncio.sleep(0.05)
        status = await check()
    return status
