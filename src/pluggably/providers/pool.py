"""An endpoint pool: several servers of one operator endpoint that serve the same models
(vLLM replicas, llama.cpp servers, …), seen by the rest of the gateway as one provider,
so the candidate loop and its fallbacks know nothing of it.

Each call goes to the least busy member that is up: fewest calls in flight from this
process, ties taking turns. A member that fails the way a dead or overloaded server
does (unreachable, timed out, 5xx, a broken answer) cools down for a few seconds, twice
as long on each failure in a row, until it answers again; the call moves on to the next
member while nothing of its answer was passed on yet (a stream that broke after its
first item ends as it would without a pool, and only later calls go elsewhere). A
periodic health check (GET …/models) marks a member down until a check passes. Members
cooling down or down are still tried, last: a call fails only when every member failed
it, and the candidate loop then treats the failure like any provider's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pluggably.errors import BackendUnavailable, GatewayError, Timeout
from pluggably.messages import Features
from pluggably.observability.logging import get_logger
from pluggably.observability.metrics import Metrics
from pluggably.providers.base import (
    Completion,
    Credential,
    ProviderCall,
    StreamEnd,
    StreamItem,
)
from pluggably.providers.openai_compat import OpenAICompatProvider

log = get_logger("pluggably.providers.pool")
T = TypeVar("T")
MemberState = Literal["up", "down", "cooling"]

COOLDOWN_S = 2.0  # after one failure; doubled on each further failure in a row
MAX_COOLDOWN_S = 60.0
CHECK_TIMEOUT_S = 3.0  # a health check slower than this fails
# What a server that is down, restarting or overloaded answers; other errors (a refused
# key, an unknown model, a bad parameter) would be the same on every member.
MEMBER_FAILURES = (BackendUnavailable, Timeout)


def display_url(url: str) -> str:
    """``url`` without credentials or query: safe for metrics labels and API answers."""
    split = urlsplit(url)
    host = split.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{split.port}" if split.port else ""
    return f"{split.scheme}://{host}{port}{split.path.rstrip('/')}"


@dataclass(frozen=True)
class MemberView:
    """One member as operators see it (``GET /v1/providers``, admins only)."""

    url: str
    state: MemberState
    in_flight: int
    failures: int  # failed calls in a row
    last_error: str | None  # the code of its last failed call
    last_error_at: datetime | None
    checked_at: datetime | None  # its last health check


class Member:
    """One server of a pool and what this process knows of it. Plain attributes: only
    the event loop's one thread reads and writes them."""

    def __init__(self, provider: OpenAICompatProvider, url: str) -> None:
        self.provider = provider
        self.url = display_url(url)
        self.in_flight = 0
        self.failures = 0
        self.cooling_until = 0.0  # monotonic time
        self.down = False  # the last health check failed
        self.checked_at: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    def state(self, now: float) -> MemberState:
        if self.down:
            return "down"
        return "cooling" if self.cooling_until > now else "up"

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def failed(self, error: GatewayError, now: float) -> float:
        """Cool down, longer on each failure in a row; the seconds it cools. A failure
        while it cools already (calls that were under way on it, a last resort) leaves
        the cooldown as it is: one outage under load is one step, not one per call."""
        self.last_error, self.last_error_at = error.code, datetime.now(UTC)
        if self.cooling_until > now:
            return self.cooling_until - now
        self.failures += 1
        pause = min(MAX_COOLDOWN_S, COOLDOWN_S * 2.0 ** min(self.failures - 1, 10))
        self.cooling_until = now + pause
        return pause

    def succeeded(self) -> None:
        self.failures, self.cooling_until = 0, 0.0


class EndpointPool:
    """A ``Provider`` over several members of one endpoint (see the module's words)."""

    def __init__(
        self,
        name: str,
        members: list[Member],
        *,
        credential: Credential,
        check_interval_s: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        first = members[0].provider
        self.name = name
        self.modalities = first.modalities
        self.max_stops = first.max_stops
        self.members = members
        self.check_interval_s = check_interval_s
        self._credential = credential  # the endpoint's key, for health checks
        self._clock = clock
        self._turn = 0  # rotates the first pick among equally busy members
        self._failovers: Any = None
        if metrics is not None:
            self._observe(metrics)

    def _observe(self, metrics: Metrics) -> None:
        """Gauges read at scrape time, so they never go stale between calls."""
        self._failovers = metrics.child(metrics.endpoint_pool_failovers, self.name)
        for member in self.members:
            in_flight = metrics.child(metrics.endpoint_pool_in_flight, self.name, member.url)
            in_flight.set_function(lambda m=member: m.in_flight)
            up = metrics.child(metrics.endpoint_pool_up, self.name, member.url)
            up.set_function(lambda m=member: m.state(self._clock()) == "up")

    def unable(self, model: str, features: Features) -> str | None:
        return self.members[0].provider.unable(model, features)

    def ignores(self, model: str, features: Features) -> str | None:
        return self.members[0].provider.ignores(model, features)

    def view(self) -> list[MemberView]:
        now = self._clock()
        return [
            MemberView(
                m.url,
                m.state(now),
                m.in_flight,
                m.failures,
                m.last_error,
                m.last_error_at,
                m.checked_at,
            )
            for m in self.members
        ]

    # calls
    async def complete(self, call: ProviderCall, credential: Credential) -> Completion:
        return await self._first(lambda provider: provider.complete(call, credential))

    async def list_models(self, credential: Credential) -> list[str]:
        return await self._first(lambda provider: provider.list_models(credential))

    async def stream(self, call: ProviderCall, credential: Credential) -> AsyncIterator[StreamItem]:
        failure: GatewayError | None = None
        for member in self._order():
            self._failing_over(failure)
            sent = False
            try:
                with member.busy():
                    items = member.provider.stream(call, credential)
                    async with contextlib.aclosing(items):  # type: ignore[type-var]
                        async for item in items:
                            if isinstance(item, StreamEnd):
                                # Its answer is whole: a consumer may close the stream
                                # on this item, without asking for its end.
                                member.succeeded()
                            sent = True
                            yield item
            except GatewayError as exc:
                if not self._failed(member, exc) or sent:
                    raise
                failure = exc
                continue
            return
        assert failure is not None
        raise failure

    async def _first(self, work: Callable[[OpenAICompatProvider], Awaitable[T]]) -> T:
        """``work``'s answer from the first member that gives one."""
        failure: GatewayError | None = None
        for member in self._order():
            self._failing_over(failure)
            try:
                with member.busy():
                    answer = await work(member.provider)
            except GatewayError as exc:
                if not self._failed(member, exc):
                    raise
                failure = exc
                continue
            member.succeeded()
            return answer
        assert failure is not None
        raise failure

    def _order(self) -> list[Member]:
        """Every member, in the order one call tries them: those up first, the least
        busy first, ties starting one further along on each call."""
        now, count, turn = self._clock(), len(self.members), self._turn
        self._turn = (turn + 1) % count

        def rank(index: int) -> tuple[bool, int, int]:
            member = self.members[index]
            return (member.state(now) != "up", member.in_flight, (index - turn) % count)

        return [self.members[i] for i in sorted(range(count), key=rank)]

    def _failed(self, member: Member, error: GatewayError) -> bool:
        """Whether ``error`` is the member's failure (it then cools down)."""
        if not isinstance(error, MEMBER_FAILURES):
            return False
        pause = member.failed(error, self._clock())
        log.warning(
            "endpoint_member_failed",
            endpoint=self.name,
            url=member.url,
            code=error.code,
            cooldown_s=pause,
        )
        return True

    def _failing_over(self, failure: GatewayError | None) -> None:
        """A call moves on to another member after ``failure`` (None: its first try)."""
        if failure is not None and self._failovers is not None:
            self._failovers.inc()

    # health
    async def check(self) -> None:
        """Check every member at once: down until its next check passes."""
        await asyncio.gather(*(self._check(m) for m in self.members))

    async def _check(self, member: Member) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await member.provider.list_models(self._credential)
            down, code = False, None
        except TimeoutError:
            down, code = True, Timeout.code
        except GatewayError as exc:  # any other answer is a server that is there
            down, code = isinstance(exc, MEMBER_FAILURES), exc.code
        member.checked_at = datetime.now(UTC)
        if down != member.down:
            member.down = down
            if down:
                log.warning("endpoint_member_down", endpoint=self.name, url=member.url, code=code)
            else:
                log.info("endpoint_member_up", endpoint=self.name, url=member.url)
