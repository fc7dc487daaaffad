"""A small soak through a real `pluggably serve` process: concurrent streams against the
OpenAI simulator all complete, and once the load stops the gateway holds no more file
descriptors, in-flight requests or running request records than before it. The large
run, with its throughput and memory goals, is bench/soak.py."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ADMIN_KEY
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import serve_with
from tests.serving.test_serve import stop_server

pytestmark = pytest.mark.slow

ADMIN = {"X-API-Key": ADMIN_KEY}
REPLY = " ".join(f"word{i}" for i in range(20))
BODY = {"model": "openai:gpt-4o-mini", "input": {"prompt": "soak"}, "stream": True}
CONCURRENCY = 32
LOAD_S = 8.0
# The gateway's upstream client: 16 pools used in turn, httpx's 5 s keep-alive expiry.
UPSTREAM_POOLS = 16
KEEPALIVE_EXPIRY_S = 5.0
FD_SLACK = 5


@dataclass
class Tally:
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    request_ids: set[str] = field(default_factory=set)

    @property
    def sent(self) -> int:
        return self.completed + self.errors.total()

    async def stream(self, client: httpx.AsyncClient) -> None:
        """One stream read to [DONE]; anything short of a clean, complete one is an error."""
        try:
            kind = await self._check(client)
        except httpx.HTTPError as exc:
            kind = f"transport:{type(exc).__name__}"
        if kind:
            self.errors[kind] += 1
            await asyncio.sleep(0.1)
        else:
            self.completed += 1

    async def _check(self, client: httpx.AsyncClient) -> str | None:
        frames: list[Any] = []
        async with client.stream("POST", "/v1/generate", json=BODY, headers=ADMIN) as r:
            if r.status_code != 200:
                await r.aread()
                return f"http_{r.status_code}"
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    data = line.removeprefix("data: ")
                    frames.append(data if data == "[DONE]" else json.loads(data))
        events = [f.get("event") for f in frames[:-1] if isinstance(f, dict) and "event" in f]
        if "error" in events:
            return "error_frame"
        if frames[-1:] != ["[DONE]"] or "[DONE]" in frames[:-1]:
            return "no_done"
        if events[:1] != ["model_selected"] or events[-1:] != ["complete"]:
            return "frames"
        text = "".join(
            f["choices"][0]["delta"].get("content") or ""
            for f in frames
            if isinstance(f, dict) and "choices" in f
        )
        if text != REPLY:
            return "text_mismatch"
        self.request_ids.add(frames[0]["request_id"])
        return None


async def load(base: str, tally: Tally, seconds: float) -> None:
    """CONCURRENCY closed-loop clients (one connection each) for `seconds`, then closed."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
            for _ in range(CONCURRENCY)
        ]
        deadline = time.monotonic() + seconds

        async def worker(client: httpx.AsyncClient) -> None:
            while time.monotonic() < deadline:
                await tally.stream(client)

        await asyncio.gather(*(worker(c) for c in clients))


def client_connections(gateway: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in gateway.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status != psutil.CONN_LISTEN
    )


async def settle(base: str, port: int, gateway: psutil.Process, tally: Tally) -> int:
    """The gateway's open fds in a comparable idle state: its idle upstream connections
    expired, then two probe streams through each upstream pool (which closes the expired
    ones and keeps at most one per pool), the probe client closed and its connection gone."""
    await asyncio.sleep(KEEPALIVE_EXPIRY_S + 0.5)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(2 * UPSTREAM_POOLS):
            await tally.stream(client)
    for _ in range(50):
        if client_connections(gateway, port) == 0:
            break
        await asyncio.sleep(0.1)
    assert client_connections(gateway, port) == 0
    return int(gateway.num_fds())


def in_flight(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=ADMIN).text
    line = next(x for x in text.splitlines() if x.startswith("pluggably_http_requests_in_flight "))
    return float(line.split()[1])


async def test_concurrent_streams_complete_and_leave_nothing_behind(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", REPLY)
    proc, log_path = serve_with(tmp_path, free_port, openai_sim)
    base = f"http://127.0.0.1:{free_port}"
    gateway = psutil.Process(proc.pid)
    tally = Tally()
    try:
        await load(base, tally, 2.0)  # warm-up: pools, caches, code paths at full width
        fds_before = await settle(base, free_port, gateway, tally)
        rss_before = gateway.memory_info().rss
        during = Tally()
        await load(base, during, LOAD_S)
        fds_after = await settle(base, free_port, gateway, tally)
        rss_after = gateway.memory_info().rss
        gauge = in_flight(base)
    finally:
        output = stop_server(proc, log_path)

    assert during.errors == Counter()
    assert tally.errors == Counter()
    assert during.completed >= CONCURRENCY  # every worker got through at least one stream
    assert fds_after <= fds_before + FD_SLACK, (fds_before, fds_after)
    assert gauge == 1.0  # the /metrics request itself
    assert openai_sim.active_streams == 0
    assert openai_sim.disconnects == 0  # the gateway never cut an upstream stream short
    # Only a coarse bound on memory here: the 10 % goal is bench/soak.py's, at scale.
    assert rss_after < rss_before * 1.5, (rss_before, rss_after)
    sent = tally.sent + during.sent
    assert len(openai_sim.requests_to("/v1/chat/completions")) == sent
    assert len(tally.request_ids | during.request_ids) == sent
    with closing(sqlite3.connect(tmp_path / "data" / "pluggably.db")) as db:
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status"))
    assert statuses == {"completed": sent}
    levels = Counter(json.loads(line).get("level") for line in output.splitlines() if line.strip())
    assert levels["error"] == levels["critical"] == 0, output[-3000:]
