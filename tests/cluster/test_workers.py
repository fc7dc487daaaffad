"""``pluggably serve --workers N``: several processes on one port, each a replica of
the cluster on PostgreSQL; local models off in them; refused on SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.cluster.harness import ADMIN, fresh_database, log_events, replica_env
from tests.cluster.test_replicas import MODEL, endpoint_env
from tests.conftest import unused_port
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import OpenAISim
from tests.serving.test_serve import BIN, _wait_ready

pytestmark = pytest.mark.slow


@pytest.fixture
def sim() -> Iterator[OpenAISim]:
    with serving(OpenAISim(), "the OpenAI simulator") as started:
        yield started


def test_workers_refused_on_sqlite_with_one_line(tmp_path: Path) -> None:
    env = replica_env(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    done = subprocess.run(
        [str(BIN), "serve", "--workers", "2", "--port", str(unused_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "--workers needs PostgreSQL" in lines[0]


def test_two_workers_share_one_port_and_each_is_a_replica(tmp_path: Path, sim: OpenAISim) -> None:
    port = unused_port()
    log_path = tmp_path / "workers.log"
    with fresh_database() as url, log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--workers", "2", "--port", str(port)],
            env=replica_env(tmp_path, url, **endpoint_env(sim)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers too are killed if the test fails
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, proc, log_path, timeout_s=60)
            # Both workers up (each answers /ready on its own once started).
            deadline = time.monotonic() + 30
            while len(log_events(log_path, "replica_joined")) < 2:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            body = {"model": MODEL, "input": {"prompt": "hi"}}
            for _ in range(40):  # a new connection each: the kernel spreads them
                with httpx.Client(base_url=base, headers=ADMIN, timeout=30) as client:
                    answer = client.post("/v1/generate", json=body)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["output"]["text"] == "Echo: hi"
            while len(_served(log_path)) < 40:  # a request's line follows its answer
                assert time.monotonic() < deadline + 30, log_path.read_text()
                time.sleep(0.05)
            # A stop that comes while a dead worker waits for its restart stops at once:
            # no worker is started after it (one would have served on, unstopped).
            os.kill(_pid_of(log_path, 0), signal.SIGKILL)
            while not log_events(log_path, "worker_died"):
                assert time.monotonic() < deadline + 30, log_path.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
    assert [line["worker"] for line in log_events(log_path, "worker_started")] == [0, 1]
    served = Counter(_served(log_path))
    assert set(served) == {0, 1}, served
    assert sum(served.values()) == 40
    assert {line["worker"] for line in log_events(log_path, "replica_joined")} == {0, 1}
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    # The parent waited for its workers (the killed one was not restarted), then stopped.
    assert len(log_events(log_path, "workers_stopped")) == 1


def test_a_worker_that_cannot_start_again_is_retried_more_slowly_then_the_server_stops(
    tmp_path: Path,
) -> None:
    """No restart storm: the pauses double, and after four quick deaths the server
    exits 1 (for its supervisor to see), stopping the worker still serving."""
    port = unused_port()
    log_path = tmp_path / "workers.log"
    with fresh_database() as url, log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--workers", "2", "--port", str(port)],
            env=replica_env(tmp_path, url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers too are killed if the test fails
        )
        try:
            _wait_ready(f"http://127.0.0.1:{port}", proc, log_path, timeout_s=60)
            deadline = time.monotonic() + 30
            while len(log_events(log_path, "replica_joined")) < 2:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            asyncio.run(_refuse_connections(url))  # a restarted worker cannot start
            os.kill(_pid_of(log_path, 0), signal.SIGKILL)
            assert proc.wait(timeout=60) == 1, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers
                proc.wait()
    died = [line for line in log_events(log_path, "worker_died") if line["worker"] == 0]
    assert [line["exitcode"] for line in died] == [-signal.SIGKILL, 3, 3, 3]
    starts = [line for line in log_events(log_path, "worker_started") if line["worker"] == 0]
    assert len(starts) == 4
    pauses = [_at(start) - _at(death) for death, start in zip(died, starts[1:], strict=False)]
    for pause, least in zip(pauses, (1.0, 2.0, 4.0), strict=True):
        assert least <= pause < least + 1.5, pauses
    assert len(log_events(log_path, "worker_keeps_dying")) == 1
    assert len(log_events(log_path, "workers_stopped")) == 1


async def _refuse_connections(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    base, name = url.rsplit("/", 1)
    admin = await asyncpg.connect(
        base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    )
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    finally:
        await admin.close()


def _served(log_path: Path) -> list[object]:
    """The worker that served each /v1/generate."""
    return [
        line.get("worker")
        for line in log_events(log_path, "request")
        if line["route"] == "/v1/generate"
    ]


def _pid_of(log_path: Path, worker: int) -> int:
    started = [line for line in log_events(log_path, "worker_started") if line["worker"] == worker]
    return int(str(started[-1]["pid"]))


def _at(line: dict[str, object]) -> float:
    return datetime.fromisoformat(str(line["timestamp"])).timestamp()
