"""``pluggably serve --workers N``: several processes on one port, each a replica of
the cluster on PostgreSQL; local models off in them; refused on SQLite."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.harness import ADMIN, fresh_database, replica_env
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
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, proc, log_path, timeout_s=60)
            # Both workers up (each answers /ready on its own once started).
            deadline = time.monotonic() + 30
            while len(_events(log_path, "replica_joined")) < 2:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            body = {"model": MODEL, "input": {"prompt": "hi"}}
            for _ in range(40):  # a new connection each: the kernel spreads them
                with httpx.Client(base_url=base, headers=ADMIN, timeout=30) as client:
                    answer = client.post("/v1/generate", json=body)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["output"]["text"] == "Echo: hi"
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    served = Counter(
        line.get("worker")
        for line in _events(log_path, "request")
        if line["route"] == "/v1/generate"
    )
    assert set(served) == {0, 1}, served
    assert sum(served.values()) == 41
    assert {line["worker"] for line in _events(log_path, "replica_joined")} == {0, 1}
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    # Both workers left the cluster cleanly: no replica is left for a survivor to sweep.
    assert len(_events(log_path, "workers_stopped")) == 1


def _events(log_path: Path, event: str) -> list[dict[str, object]]:
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("event") == event:
            found.append(parsed)
    return found
