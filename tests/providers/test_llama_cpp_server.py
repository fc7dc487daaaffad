"""One upstream nobody here wrote: llama.cpp's own OpenAI-compatible server
(``llama_cpp.server``) on the bundled Gemma 3 270M GGUF, behind the gateway as an
operator endpoint. A base model: the assertions are about plumbing, not wit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, client_for, generate, make_settings, running, sse_frames

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] (the 'local' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path) -> Iterator[str]:
    model = gemma_gguf
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            "gemma",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--n_threads",
            str(os.cpu_count() or 2),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, "llama_cpp.server exited; see its log"
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'pluggably.db'}"


async def test_generation_through_llama_cpp_server(
    tmp_path: Path, sqlite_url: str, llama_server: str
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        endpoints={"llamacpp": {"base_url": llama_server, "models": ["gemma"]}},
    )
    app = create_app(settings)
    async with running(app), client_for(app, timeout=120) as client:
        response = await generate(
            client,
            ADMIN,
            model="llamacpp:gemma",
            input={"prompt": "The capital of France is"},
            parameters={"max_tokens": 12, "temperature": 0, "seed": 1},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["provider"] == "llamacpp"
        assert body["output"]["text"]
        usage = body["usage"]
        assert usage["prompt_tokens"] > 3  # counted by llama.cpp's tokenizer, not by words
        assert 1 <= usage["completion_tokens"] <= 12
        assert body["finish_reason"] in {"stop", "length"}

        frames = await sse_frames(
            client,
            ADMIN,
            model="llamacpp:gemma",
            input={"prompt": "The capital of France is"},
            parameters={"max_tokens": 16, "temperature": 0, "seed": 1},
        )
        deltas = [f for f in frames if isinstance(f, dict) and "choices" in f]
        assert len(deltas) >= 3, frames  # real incremental tokens, not one block
        assert frames[-2]["event"] == "complete"
        assert frames[-1] == "[DONE]"
        listed = (await client.get("/v1/providers", headers=ADMIN)).json()["providers"]
        assert next(p for p in listed if p["name"] == "llamacpp")["models_discovered"] == ["gemma"]
