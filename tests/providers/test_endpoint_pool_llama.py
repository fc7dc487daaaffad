"""An endpoint pool over two real llama.cpp servers (``llama_cpp.server`` on the bundled
Gemma 3 270M GGUF) behind a real ``pluggably serve``: calls spread over both, and when
one server is killed (SIGKILL) in the middle of a stream, that stream ends in an error
event and every later call is answered by the other server, with no error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, unused_port
from tests.serving.test_serve import start_server, stop_server

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] (the 'local' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
# A base model continues a count to its token limit: a stream long enough to cut.
COUNT = [
    {"role": "user", "content": "Count to fifty."},
    {"role": "assistant", "content": "1, 2, 3, 4, 5, 6, 7, 8,"},
]


@dataclass
class Llama:
    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def served(self) -> int:
        """Chat calls it answered (uvicorn's access log)."""
        return self.log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200')


def start_llama(model: Path, log: Path) -> Llama:
    port = unused_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "llama_cpp.server", "--model", str(model)),
                *("--model_alias", "gemma", "--host", "127.0.0.1", "--port", str(port)),
                *("--n_ctx", "512", "--n_threads", "1"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Llama(proc, f"http://127.0.0.1:{port}/v1", log)


@pytest.fixture
def llamas(tmp_path: Path, gemma_gguf: Path) -> Iterator[list[Llama]]:
    servers = [start_llama(gemma_gguf, tmp_path / f"llama-{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 120
        for server in servers:
            while not _answers(server):
                assert server.proc.poll() is None, server.log.read_text()
                assert time.monotonic() < deadline, "llama_cpp.server did not start"
                time.sleep(0.2)
        yield servers
    finally:
        for server in servers:
            server.proc.kill()
            server.proc.wait(timeout=30)


def _answers(server: Llama) -> bool:
    try:
        return httpx.get(f"{server.base_url}/models", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def count(client: httpx.Client, *, stream: bool, max_tokens: int = 4) -> Iterator[Any]:
    """The frames of one call: the JSON answer, or each ``data:`` frame of the stream."""
    body = {
        "model": "llamas:gemma",
        "input": {"messages": COUNT},
        "parameters": {"max_tokens": max_tokens, "temperature": 0},
        "stream": stream,
    }
    if not stream:
        response = client.post("/v1/generate", json=body)
        assert response.status_code == 200, response.text
        yield response.json()
        return
    with client.stream("POST", "/v1/generate", json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                yield data if data == "[DONE]" else json.loads(data)


def pool(client: httpx.Client) -> list[dict[str, Any]]:
    providers = client.get("/v1/providers?discover=false").json()["providers"]
    members: list[dict[str, Any]] = next(p for p in providers if p["name"] == "llamas")["pool"]
    return members


def test_a_pool_of_two_llama_cpp_servers_survives_one_killed_mid_stream(
    tmp_path: Path, llamas: list[Llama]
) -> None:
    endpoint = {
        "base_urls": [server.base_url for server in llamas],
        "models": ["gemma"],
        "health_check_interval_s": 1,
    }
    port = unused_port()
    gateway, log = start_server(
        tmp_path, port, PLUGGABLY_ENDPOINTS=json.dumps({"llamas": endpoint})
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=ADMIN, timeout=60) as client:
            for _ in range(4):
                assert next(count(client, stream=False))["output"]["text"]
            assert [server.served() for server in llamas] == [2, 2]

            frames = count(client, stream=True, max_tokens=64)
            first_delta = next(f for f in frames if isinstance(f, dict) and "choices" in f)
            assert first_delta["choices"][0]["delta"]["content"]
            busy = next(m for m in pool(client) if m["in_flight"] == 1)
            victim, survivor = sorted(llamas, key=lambda s: s.base_url != busy["url"])
            victim.proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            rest = list(frames)
            assert rest[-1] == "[DONE]"
            assert (rest[-2]["event"], rest[-2]["code"]) == ("error", "backend_unavailable")
            broken_after_s = time.monotonic() - killed_at

            answered = survivor.served()
            took = []
            for i in range(6):
                started = time.monotonic()
                if i % 2:
                    assert list(count(client, stream=True))[-2]["event"] == "complete"
                else:
                    assert next(count(client, stream=False))["output"]["text"]
                took.append(time.monotonic() - started)
            assert survivor.served() == answered + 6

            deadline = time.monotonic() + 10
            while [m["state"] for m in pool(client)] != (
                ["down", "up"] if victim is llamas[0] else ["up", "down"]
            ):
                assert time.monotonic() < deadline, pool(client)
                time.sleep(0.1)
            down_after_s = time.monotonic() - killed_at
            print(
                f"\nstream ended {broken_after_s:.3f} s after the kill; later calls took "
                f"{', '.join(f'{t:.2f}' for t in took)} s; marked down {down_after_s:.2f} s "
                "after the kill"
            )
    finally:
        stop_server(gateway, log)
