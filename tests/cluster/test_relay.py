"""The bus and the request relay between replicas, in one process on PostgreSQL: what
a follower on one replica gets of a request running on another when events and
messages race, when a text does not fit a message or UTF-8, and when the database
connection dies without a word."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from pluggably.cluster.bus import Bus, Message
from pluggably.cluster.relay import RequestRelay
from pluggably.generation.events import LiveEvent, Status, TextDelta
from pluggably.generation.live import LiveRequests
from pluggably.generation.records import RequestRecords
from tests.conftest import assert_envelope, client_for, new_user
from tests.fixtures.faults import TcpProxy


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas talk over PostgreSQL only")
    return database_url


@asynccontextmanager
async def replica(
    url: str, name: str, *, lease_s: float = 1.0, **bus: Any
) -> AsyncIterator[RequestRelay]:
    relay = RequestRelay(Bus(url, name, **bus), LiveRequests(), name, lease_s)
    await relay.bus.start()
    try:
        yield relay
    finally:
        await relay.close()
        await relay.bus.close()


def status(value: str) -> Callable[[], Awaitable[str]]:
    async def check() -> str:
        return value

    return check


def text_of(events: list[LiveEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def test_a_delta_published_as_the_follow_arrives_is_relayed_once(pg_url: str) -> None:
    async with replica(pg_url, "rep_a") as a, replica(pg_url, "rep_b") as b:
        a.live.open("req_1", "usr_1")
        a.live.delta("req_1", "one ")
        on_follow, followed = a.bus.handlers["follow"], asyncio.Event()

        def follow_then_delta(message: Message) -> None:
            on_follow(message)
            a.live.delta("req_1", "two ")  # the generation's step in the same loop turn
            followed.set()

        a.bus.handlers["follow"] = follow_then_delta

        async def finish() -> None:
            await followed.wait()
            await asyncio.sleep(0.05)
            a.live.delta("req_1", "three")
            a.live.close("req_1", "completed")

        finishing = asyncio.create_task(finish())
        events = [event async for event in b.follow("rep_a", "req_1", status("running"))]
        await finishing
    assert text_of(events) == "one two three"
    assert events[-1] == Status("req_1", "completed")


async def test_any_text_is_relayed_whole_across_messages(pg_url: str) -> None:
    """Over 8000 bytes, non-ASCII, control characters, JSON's own escapes; and half
    an emoji (a lone surrogate from an upstream's JSON), which UTF-8 cannot carry."""
    so_far = "".join(f'é😀\x00\x1b"\\\n{i} 中文 ' for i in range(600))  # ~12 KB
    assert len(so_far.encode()) > 8000
    async with replica(pg_url, "rep_a") as a, replica(pg_url, "rep_b") as b:
        a.live.open("req_2", "usr_1")
        a.live.delta("req_2", so_far)
        following = asyncio.create_task(_collect(b.follow("rep_a", "req_2", status("running"))))
        while not a.live.find("req_2").listeners:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        a.live.delta("req_2", "cut \ud83d")
        a.live.delta("req_2", "\x01" * 5000)  # 30 KB as JSON escapes
        a.live.close("req_2", "completed")
        events = await asyncio.wait_for(following, 5)
    assert text_of(events) == so_far + "cut \ufffd" + "\x01" * 5000
    assert events[-1] == Status("req_2", "completed")


async def test_a_lost_message_ends_the_follow_rather_than_relay_a_hole(pg_url: str) -> None:
    async with replica(pg_url, "rep_a") as a, replica(pg_url, "rep_b") as b:
        live = a.live.open("req_3", "usr_1")
        send, sent = a.bus.send, []

        async def lossy(to: str, message: Message) -> bool:
            if message["k"] == "ev":
                sent.append(message)
                if len(sent) == 2:
                    return False  # lost on the way (the bus reconnecting)
            return await send(to, message)

        a.bus.send = lossy  # type: ignore[method-assign]
        following = asyncio.create_task(_collect(b.follow("rep_a", "req_3", status("running"))))
        await _until(lambda: bool(live.listeners))
        for count, word in enumerate(("one ", "two ", "three "), start=1):
            a.live.delta("req_3", word)
            await _until(lambda: len(sent) == count)  # noqa: B023 (awaited here)
        events = await asyncio.wait_for(following, 5)
        assert text_of(events) == "one "  # never "one three "
        assert events[-1] == Status("req_3", "running")  # as its record says
        await _until(lambda: not live.listeners)  # A was told to stop sending


async def _collect(events: AsyncIterator[LiveEvent]) -> list[LiveEvent]:
    return [event async for event in events]


class SilentProxy(TcpProxy):
    """A TCP proxy whose connections can go silent: bytes are swallowed, nothing is
    closed (a NAT or firewall that dropped an idle connection, a host gone)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._silent: set[socket.socket] = set()

    def silence(self) -> None:
        """The connections open now go silent; new ones work."""
        with self._lock:
            self._silent |= self._live

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src not in self._silent:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


async def test_a_bus_cut_off_silently_reconnects_and_hears_again(pg_url: str) -> None:
    url = make_url(pg_url)
    with SilentProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        heard_a: list[int] = []
        heard_b: list[int] = []
        async with (
            replica(through, "rep_a", ping_s=0.5, timeout_s=0.5) as a,
            replica(pg_url, "rep_b") as b,
        ):
            a.bus.handlers["t"] = lambda message: heard_a.append(message["n"])
            b.bus.handlers["t"] = lambda message: heard_b.append(message["n"])
            assert await b.bus.send("rep_a", {"k": "t", "n": 1})
            assert await a.bus.send("rep_b", {"k": "t", "n": 1})
            await _until(lambda: heard_a == heard_b == [1])
            proxy.silence()
            # A's send gives up on its silent connection instead of holding every later
            # message behind it, and the next goes out on a new one.
            async with asyncio.timeout(3):
                assert not await a.bus.send("rep_b", {"k": "t", "n": 2})
            assert await a.bus.send("rep_b", {"k": "t", "n": 3})
            await _until(lambda: heard_b == [1, 3])
            # A listens again within a ping, its timeout and a reconnect round.
            async with asyncio.timeout(6):
                while 4 not in heard_a:
                    assert await b.bus.send("rep_a", {"k": "t", "n": 4})
                    await asyncio.sleep(0.2)


async def _until(condition: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_cancel_through_b_answers_how_a_request_that_ended_on_a_ended(
    pg_url: str, app: FastAPI
) -> None:
    """The running replica no longer has it (it ended as the cancel came) and writes its
    record a moment later: B answers that end, not the "running" it read first. Only
    the request's owner reaches the relay at all."""
    container = app.state.container
    async with replica(pg_url, "rep_a") as a, client_for(app) as client:
        asked: list[Message] = []
        on_cancel = a.bus.handlers["cancel"]
        a.bus.handlers["cancel"] = lambda message: (asked.append(message), on_cancel(message))
        owner, stranger = await new_user(client, "owner"), await new_user(client, "stranger")
        me = (await client.get("/v1/users/me", headers=owner)).json()["id"]
        records_a = RequestRecords(container.db, replica_id="rep_a")
        request_id = records_a.start(me, "text", stream=True)
        await records_a.flush()
        path = f"/v1/requests/{request_id}"
        for attempt in (
            client.post(f"{path}/cancel", headers=stranger),
            client.get(f"{path}/events", headers=stranger),
        ):
            assert_envelope(await attempt, 404, "request_not_found")
        assert asked == []

        async def end_on_a() -> None:
            await _until(lambda: bool(asked))
            await asyncio.sleep(0.2)  # its record writer's batch
            await records_a.finish(request_id, status="completed")

        ending = asyncio.create_task(end_on_a())
        answer = await client.post(f"{path}/cancel", headers=owner)
        await ending
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "request_id": request_id,
        "cancelled": False,
        "status": "completed",
        "partial_output": None,
    }
    assert [m["r"] for m in asked] == [request_id]
