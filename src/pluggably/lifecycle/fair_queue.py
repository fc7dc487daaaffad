"""One local model's queue: its running slots, and the requests waiting for one in
the order they will be served.

A freed slot goes to the users in turn, not to whoever queued most. Each ticket gets
a round when it enters: the round being served now, or the one after its user's
previous ticket, whichever is later; tickets wait in (round, arrival) order. A user
with many requests waiting thus takes one slot per round, and a user who arrives later
is served within the current round, ahead of the first user's later requests
(start-time fair queueing, every request costing one). A ticket without a user (a
caller that names none) is a user of its own: plain FIFO among those.

Admission (admission.py) owns the limits and tells waiters their positions; this holds
the order. Everything runs on the event loop: no lock."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

PositionListener = Callable[[int], None]


@dataclass(eq=False)
class Ticket:
    """A request's place: a slot once ``granted`` is set, else a place in line."""

    request_id: str
    user: str | None
    granted: asyncio.Future[None]
    enqueued: float
    seq: int  # arrival order (ties within a round)
    round: int = 0
    position: int = 0  # 1-based while waiting
    listener: PositionListener | None = None

    @property
    def is_granted(self) -> bool:
        # A waiter's task being cancelled cancels the future it awaits: not a grant.
        return self.granted.done() and not self.granted.cancelled()


def _order(ticket: Ticket) -> tuple[int, int]:
    return ticket.round, ticket.seq


@dataclass
class FairQueue:
    running: int = 0  # slots granted (taken over by a request or still reserved)
    waiting: list[Ticket] = field(default_factory=list)  # in the order they will be served
    served: int = 0  # the round of the ticket granted last
    # user -> the earliest round their next ticket may have; entries at or below
    # ``served`` mean nothing more than no entry and are dropped.
    next_round: dict[str, int] = field(default_factory=dict)

    def start(self, ticket: Ticket) -> None:
        """Grant ``ticket`` a slot at once (there is one free and nobody waits)."""
        self._place(ticket)
        self._grant(ticket)

    def wait(self, ticket: Ticket) -> None:
        self._place(ticket)
        bisect.insort(self.waiting, ticket, key=_order)

    def grant_next(self) -> Ticket | None:
        """The first in line, granted a slot; None when nobody waits."""
        while self.waiting:
            ticket = self.waiting.pop(0)
            if not ticket.granted.done():  # else cancelled in the same instant
                self._grant(ticket)
                return ticket
        return None

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting ticket leaves the line. Its user's next ticket gets the round after
        their last one still waiting (or the next round), not one past what left."""
        if ticket in self.waiting:
            self.waiting.remove(ticket)
        if ticket.user is None:
            return
        rounds = [t.round for t in self.waiting if t.user == ticket.user]
        fallback = min(self.next_round.get(ticket.user, 0), self.served + 1)
        self.next_round[ticket.user] = max(rounds) + 1 if rounds else fallback

    def waiting_of(self, user: str) -> list[Ticket]:
        return [t for t in self.waiting if t.user == user]

    def _place(self, ticket: Ticket) -> None:
        user = ticket.user
        ticket.round = max(self.served, self.next_round.get(user, 0) if user is not None else 0)
        if user is not None:
            self.next_round[user] = ticket.round + 1

    def _grant(self, ticket: Ticket) -> None:
        self.running += 1
        ticket.position = 0
        if ticket.round > self.served:
            self.served = ticket.round
            self.next_round = {u: r for u, r in self.next_round.items() if r > self.served}
        ticket.granted.set_result(None)
