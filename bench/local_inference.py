"""Local inference through the gateway: generation speed against llama-cpp-python called
directly, time from cancel to a free slot, and the delay between a queue position
change and its SSE frame.

Run:  .venv/bin/python bench/local_inference.py [--runs 5] [--max-tokens 128]

- Model: the bundled Gemma 3 270M Q4_K_M GGUF (the 'local' extra), served by a real
  `pluggably serve` process (SQLite; it is the default text model, pinned and loaded at
  startup). Direct: llama_cpp.Llama in this process with the gateway's settings (n_ctx
  4096, one thread per CPU), the same prompt string (the plain transcript the gateway
  builds for a base model) and the same stop sequences, temperature 0.
- Speed: completion tokens / wall time of one whole generation (prompt evaluation
  included) for both; `--runs` alternating pairs after a warm-up each; medians. Through
  the gateway the time is the client's (request sent -> JSON read), so HTTP, routing,
  records and the scheduler's thread hand-off are all inside it.
- Cancel -> slot free: A streams a long answer; B waits in the queue (stream); after A's
  first tokens the client POSTs A's cancel at t0; t1 = B's `model_selected` frame (B got
  the slot). Reported: t1 - t0 (includes the cancel request's own round trip).
- Position change -> frame: A runs, B (position 1) and C (position 2) wait, streaming;
  POST B's cancel at t0; t1 = C's `queued` frame with position 1. Reported: t1 - t0.
Results go to bench/results/local_inference.{json,md} (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "pluggably"
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
HEADERS = {"X-API-Key": ADMIN_KEY}
MODEL = "bundled/gemma-3-270m-q4_k_m"
PROMPT = "Write a long story about a lighthouse keeper and the sea."
TRANSCRIPT = f"User: {PROMPT}\nAssistant:"
STOPS = ["\nUser:", "\nSystem:"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    env.update(
        PLUGGABLY_DATA_DIR=str(tmp / "data"),
        PLUGGABLY_SECRET_KEY_FILE=str(tmp / "config" / "secret.key"),
        PLUGGABLY_ADMIN_KEY=ADMIN_KEY,
        PLUGGABLY_LOG_LEVEL="warning",
        PLUGGABLY_MAX_QUEUE_DEPTH="8",
    )
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit((tmp / "server.log").read_text())
        try:
            ready = httpx.get(f"{base}/ready", timeout=1).status_code == 200
            loaded = httpx.get(f"{base}/v1/models/loaded", headers=HEADERS, timeout=1).json()
            if ready and [m["model_id"] for m in loaded["models"]] == [MODEL]:
                return proc
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit("the gateway did not load its default model in time")


def direct_run(llm: Any, max_tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    out = llm.create_completion(
        TRANSCRIPT, max_tokens=max_tokens, temperature=0.0, top_p=1.0, stop=STOPS
    )
    took = time.perf_counter() - started
    return int(out["usage"]["completion_tokens"]), took


def gateway_run(base: str, max_tokens: int) -> tuple[int, float]:
    body = {
        "model": MODEL,
        "input": {"prompt": PROMPT},
        "parameters": {"max_tokens": max_tokens, "temperature": 0, "top_p": 1},
        "wait": True,
    }
    started = time.perf_counter()
    response = httpx.post(f"{base}/v1/generate", json=body, headers=HEADERS, timeout=300)
    took = time.perf_counter() - started
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"]), took


def speed(base: str, gguf: Path, runs: int, max_tokens: int) -> dict[str, Any]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=os.cpu_count() or 1, verbose=False)
    direct_run(llm, 8)
    gateway_run(base, 8)
    direct: list[float] = []
    gateway: list[float] = []
    tokens: dict[str, list[int]] = {"direct": [], "gateway": []}
    for i in range(runs):
        order = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
        for which in order:
            if which == "direct":
                n, took = direct_run(llm, max_tokens)
                direct.append(n / took)
            else:
                n, took = gateway_run(base, max_tokens)
                gateway.append(n / took)
            tokens[which].append(n)
    llm.close()
    ratio = statistics.median(gateway) / statistics.median(direct)
    return {
        "direct_tokens_per_s": [round(x, 1) for x in direct],
        "gateway_tokens_per_s": [round(x, 1) for x in gateway],
        "completion_tokens": tokens,
        "direct_median": round(statistics.median(direct), 1),
        "gateway_median": round(statistics.median(gateway), 1),
        "ratio": round(ratio, 3),
    }


class Stream:
    """One streamed /v1/generate read in the background; frames with arrival times."""

    def __init__(self, client: httpx.AsyncClient, max_tokens: int) -> None:
        self.frames: list[tuple[float, Any]] = []
        self.request_id: str | None = None
        self.changed = asyncio.Event()
        body = {
            "model": MODEL,
            "input": {"prompt": PROMPT},
            "parameters": {"max_tokens": max_tokens},
            "stream": True,
        }
        self.task = asyncio.ensure_future(self._read(client, body))

    async def _read(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        async with client.stream("POST", "/v1/generate", json=body, headers=HEADERS) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                frame = data if data == "[DONE]" else json.loads(data)
                if isinstance(frame, dict) and frame.get("request_id"):
                    self.request_id = frame["request_id"]
                self.frames.append((time.perf_counter(), frame))
                self.changed.set()

    async def until(self, check: Any, limit_s: float = 60) -> float:
        async with asyncio.timeout(limit_s):
            while True:
                for at, frame in self.frames:
                    if isinstance(frame, dict) and check(frame):
                        return at
                self.changed.clear()
                await self.changed.wait()


async def cancel_and_position(base: str, runs: int) -> dict[str, Any]:
    free_ms: list[float] = []
    position_ms: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        for _ in range(runs):
            a = Stream(client, 4000)
            await a.until(lambda f: "choices" in f)
            b = Stream(client, 4)
            await b.until(lambda f: f.get("event") == "queued")
            c = Stream(client, 4)
            await c.until(lambda f: f.get("event") == "queued" and f["queue_position"] == 2)
            # Position change: B leaves the queue, C moves to 1.
            t0 = time.perf_counter()
            await client.post(f"/v1/requests/{b.request_id}/cancel", headers=HEADERS)
            t1 = await c.until(lambda f: f.get("event") == "queued" and f["queue_position"] == 1)
            position_ms.append((t1 - t0) * 1000)
            # Cancel -> slot free: A stops, C gets the slot.
            t0 = time.perf_counter()
            await client.post(f"/v1/requests/{a.request_id}/cancel", headers=HEADERS)
            t1 = await c.until(lambda f: f.get("event") == "model_selected")
            free_ms.append((t1 - t0) * 1000)
            await asyncio.gather(a.task, b.task, c.task, return_exceptions=True)
    return {
        "cancel_to_slot_free_ms": [round(x, 1) for x in free_ms],
        "cancel_to_slot_free_median_ms": round(statistics.median(free_ms), 1),
        "cancel_to_slot_free_max_ms": round(max(free_ms), 1),
        "position_change_to_frame_ms": [round(x, 1) for x in position_ms],
        "position_change_to_frame_median_ms": round(statistics.median(position_ms), 1),
        "position_change_to_frame_max_ms": round(max(position_ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        port = free_port()
        proc = start_gateway(tmp, port)
        base = f"http://127.0.0.1:{port}"
        try:
            gguf = next((tmp / "data" / "models" / "bundled").glob("*.gguf"))
            result = {
                "speed": speed(base, gguf, args.runs, args.max_tokens),
                "queue": asyncio.run(cancel_and_position(base, args.runs)),
            }
        finally:
            proc.terminate()
            proc.wait(30)
    commit = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "command": "python bench/local_inference.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    s, q = result["speed"], result["queue"]
    goals = [
        ("tokens/s through the gateway ≥ 0.95 x direct", s["ratio"], s["ratio"] >= 0.95),
        (
            "cancel → slot free < 200 ms (max)",
            q["cancel_to_slot_free_max_ms"],
            q["cancel_to_slot_free_max_ms"] < 200,
        ),
        (
            "position change → SSE frame < 100 ms (max)",
            q["position_change_to_frame_max_ms"],
            q["position_change_to_frame_max_ms"] < 100,
        ),
    ]
    out = {
        "meta": meta,
        **result,
        "goals": [{"goal": g, "value": v, "pass": ok} for g, v, ok in goals],
    }
    results = args.out
    results.mkdir(parents=True, exist_ok=True)
    (results / "local_inference.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Local inference benchmark",
        "",
        f"{meta['when']} · commit {commit} · {meta['cpus']} CPUs · Python {meta['python']}",
        "",
        f"Command: `{meta['command']}` ({meta['seconds']} s in all). Model: bundled Gemma 3 "
        "270M Q4_K_M, gateway = `pluggably serve` (SQLite), direct = llama_cpp.Llama in the "
        "benchmark process, same prompt, stops and settings, temperature 0.",
        "",
        "| measure | values | median |",
        "|---|---|---|",
        f"| direct tokens/s | {s['direct_tokens_per_s']} | {s['direct_median']} |",
        f"| gateway tokens/s | {s['gateway_tokens_per_s']} | {s['gateway_median']} |",
        f"| cancel → slot free (ms) | {q['cancel_to_slot_free_ms']} | "
        f"{q['cancel_to_slot_free_median_ms']} |",
        f"| position change → frame (ms) | {q['position_change_to_frame_ms']} | "
        f"{q['position_change_to_frame_median_ms']} |",
        "",
        "| goal | value | result |",
        "|---|---|---|",
        *[f"| {g} | {v} | {'PASS' if ok else 'FAIL'} |" for g, v, ok in goals],
        "",
    ]
    (results / "local_inference.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
