"""Admission: each local model's queue of requests for its slots.

Who owns what
- ``Admission._queues``: model id -> FairQueue (``parallel`` running slots, waiting
  tickets in the order they will be served: users in turn, see fair_queue.py).
  Positions are 1-based; every change renumbers the waiters and calls each waiter's
  listener at once (the SSE layer turns that into a frame).
- ``Admission._reserved``: request id -> the place ``reserve`` took for it before its
  ``admit`` (a stream's place is taken before its 200 goes out); ``admit`` takes it
  over, ``release`` gives back one it never did.

How it fails
- A full queue raises ``QueueFull`` (503) before the request waits; a user who already
  has their share of it waiting (``max_queue_per_user``) ``RateLimited`` (429), so one
  user cannot take the whole queue. Both are raised synchronously, with Retry-After.
- A cancelled waiter (its task cancelled: client gone, POST …/cancel) leaves the queue
  and the others move up.

Residency (scheduler.py) holds a slot from ``admit`` to ``leave`` around the model's
use; it is told of every change (``on_change``) because a model with requests running
or waiting is not idle, and it supplies each model's recent service time, which the
wait estimates come from.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pluggably.errors import QueueFull, RateLimited
from pluggably.lifecycle.fair_queue import FairQueue, PositionListener, Ticket
from pluggably.lifecycle.limits import SchedulerLimits
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.lifecycle")
QUEUE_FULL_RETRY_S = 5  # the model's whole queue: nothing says when a place frees
MAX_RETRY_AFTER_S = 300


@dataclass(frozen=True)
class Reservation:
    """A place taken by ``Admission.reserve``. Leaving its ``with`` block or closing it
    (the SSE layer closes a stream's source, whether the stream started or not) gives
    the place back, unless the request's ``admit`` took it over."""

    admission: Admission
    request_id: str

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.admission.release(self.request_id)

    async def aclose(self) -> None:
        self.admission.release(self.request_id)


class Admission:
    def __init__(
        self,
        limits: SchedulerLimits,
        *,
        clock: Callable[[], float],
        service_ms: Callable[[str], float | None],
        on_change: Callable[[], None],
        metrics: Any = None,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.service_ms = service_ms  # a model's mean time in a slot (None: not known)
        self.on_change = on_change
        self.metrics = metrics
        self._queues: dict[str, FairQueue] = {}
        self._reserved: dict[str, tuple[str, Ticket]] = {}  # request id -> (model id, place)
        self._arrivals = itertools.count()  # tickets' arrival order

    # state
    def depth(self, model_id: str) -> int:
        queue = self._queues.get(model_id)
        return len(queue.waiting) if queue else 0

    def holds(self, model_id: str) -> bool:
        """A slot taken (perhaps not yet used: e.g. while its model loads) or a request
        waiting for one."""
        queue = self._queues.get(model_id)
        return queue is not None and (queue.running > 0 or bool(queue.waiting))

    def position(self, request_id: str) -> int | None:
        for queue in self._queues.values():
            for ticket in queue.waiting:
                if ticket.request_id == request_id:
                    return ticket.position
        return None

    def estimated_wait_ms(self, model_id: str, position: int) -> int | None:
        """From the model's recent service times (None until one is known)."""
        mean = self.service_ms(model_id)
        return None if mean is None else int(mean * position / max(self.limits.parallel, 1))

    # places
    def reserve(self, model_id: str, request_id: str, user: str | None = None) -> Reservation:
        """Take the request's place for the model now, without waiting: a free slot, or
        a place in its queue. The refusals are raised here, synchronously, so a caller
        knows them before it answers anything: ``RateLimited`` (429) when ``user``
        already has their share of the queue waiting, ``QueueFull`` (503) when the queue
        is full. Taken again for the same model, the place stays as it is."""
        held = self._reserved.get(request_id)
        if held is not None and held[0] != model_id:
            self.release(request_id)
            held = None
        if held is None:
            self._reserved[request_id] = (model_id, self._enter(model_id, request_id, user))
        return Reservation(self, request_id)

    def release(self, request_id: str) -> None:
        """Give back the place ``reserve`` took, unless the request's ``admit`` took it
        over."""
        held = self._reserved.pop(request_id, None)
        if held is not None:
            self._withdraw(*held)

    async def admit(
        self, model_id: str, request_id: str, user: str | None, listener: PositionListener | None
    ) -> None:
        """Wait for a slot: the place ``reserve`` took for the request, else one taken
        now for ``user``. The caller gives the slot back with ``leave``."""
        held = self._reserved.pop(request_id, None)
        if held is not None and held[0] != model_id:
            self._withdraw(*held)
            held = None
        ticket = held[1] if held is not None else self._enter(model_id, request_id, user)
        if ticket.is_granted:  # a free slot: at once, or while it was reserved
            return
        ticket.listener = listener
        self._tell(ticket)
        try:
            await ticket.granted
        except asyncio.CancelledError:
            self._withdraw(model_id, ticket)
            raise
        if self.metrics is not None:
            self.metrics.queue_wait.labels(model_id).observe(self.clock() - ticket.enqueued)

    def leave(self, model_id: str) -> None:
        """A slot frees: the next in line takes it, the others move up."""
        queue = self._queues[model_id]
        queue.running -= 1
        while queue.running < self.limits.parallel and queue.grant_next() is not None:
            pass
        self._renumber(queue)
        if not queue.running and not queue.waiting:
            del self._queues[model_id]
        self._gauge(model_id)
        self.on_change()

    def _enter(self, model_id: str, request_id: str, user: str | None) -> Ticket:
        queue = self._queues.setdefault(model_id, FairQueue())
        loop = asyncio.get_running_loop()
        ticket = Ticket(request_id, user, loop.create_future(), self.clock(), next(self._arrivals))
        if queue.running < self.limits.parallel and not queue.waiting:
            queue.start(ticket)
            return ticket
        self._check_room(model_id, queue, user)
        queue.wait(ticket)
        self._renumber(queue)
        self._gauge(model_id)
        return ticket

    def _check_room(self, model_id: str, queue: FairQueue, user: str | None) -> None:
        """The queue's limits: the model's whole queue first (both may hold: a share can
        be as large as the queue), then the user's share of it."""
        limits = self.limits
        if len(queue.waiting) >= limits.max_queue_depth:
            raise QueueFull(
                f"'{model_id}' has {len(queue.waiting)} requests waiting (the limit); "
                "try again shortly or use another model.",
                retry_after=QUEUE_FULL_RETRY_S,
            )
        if user is None:
            return
        share = limits.max_queue_per_user or max(1, limits.max_queue_depth // 4)
        mine = queue.waiting_of(user)
        if len(mine) >= share:
            raise RateLimited(
                f"You have {len(mine)} requests waiting for '{model_id}' (your share of its "
                "queue); send more once one of them has started, or use another model.",
                retry_after=self._retry_after(model_id, mine[0].position),
            )

    def _retry_after(self, model_id: str, position: int) -> int:
        """Seconds until the waiter at ``position`` is likely to have started."""
        wait_ms = self.estimated_wait_ms(model_id, position)
        if wait_ms is None:
            return QUEUE_FULL_RETRY_S
        return min(max(1, math.ceil(wait_ms / 1000)), MAX_RETRY_AFTER_S)

    def _withdraw(self, model_id: str, ticket: Ticket) -> None:
        """Give a place back: the slot when it was granted (perhaps in the same instant
        as a cancel), else its place in line (the others move up)."""
        if ticket.is_granted:
            self.leave(model_id)
            return
        queue = self._queues[model_id]
        queue.withdraw(ticket)
        self._renumber(queue)
        self._gauge(model_id)
        self.on_change()

    def _renumber(self, queue: FairQueue) -> None:
        for index, ticket in enumerate(queue.waiting, start=1):
            if ticket.position != index:
                ticket.position = index
                self._tell(ticket)

    def _tell(self, ticket: Ticket) -> None:
        if ticket.listener is not None:
            try:
                ticket.listener(ticket.position)
            except Exception:
                log.exception("position_listener_failed", request_id=ticket.request_id)

    def _gauge(self, model_id: str) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.labels(model_id).set(self.depth(model_id))
