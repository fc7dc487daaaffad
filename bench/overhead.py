"""Gateway overhead: the same OpenAI-compatible upstream called directly, through
Pluggably's `POST /v1/generate` and through LiteLLM's proxy (`/v1/chat/completions`), JSON
and SSE, at concurrency 1, 16 and 64.

Run:  .venv/bin/python bench/overhead.py [--requests-c1 300] [--min-requests-c64 3000]
      [--concurrency 1,16,64] [--upstream fast|sim] [--upstream-latency-ms 0]
      [--profile auto|always|never] [--no-litellm]
Full run (what bench/results/overhead.md holds): .venv/bin/python bench/overhead.py
Smoke run: .venv/bin/python bench/overhead.py --requests-c1 30 --min-requests-c64 300
      --min-s 2 --max-s 4 --profile never --out /tmp/overhead-smoke

Four processes share the machine's CPUs:
- upstream: by default a tiny raw-asyncio HTTP/1.1 server (this file, --upstream-worker)
  serving /v1/chat/completions as JSON or chunked SSE (role chunk, 20 content chunks,
  finish chunk, usage chunk, [DONE]) with one fixed 20-token reply, keep-alive, no delay
  unless --upstream-latency-ms; replies are built once and cached, so it costs a few tens
  of microseconds per request. `--upstream sim` runs tests/fixtures/openai_sim.py's
  threaded OpenAISim in a helper process instead (it saturates first at concurrency 64).
- gateway: the real `pluggably serve` (SQLite, admin key, server-side OpenAI key), its
  OpenAI provider pointed at the upstream; its httpx client uses HTTP/1.1 keep-alive.
- litellm: LiteLLM's proxy (bench/litellm_proxy.py: `litellm[proxy]==LITELLM_VERSION` in
  bench/.venv-litellm, installed on first use; one worker, no database, master key, local
  cost map, telemetry off), its model_list pointing `gpt-4o-mini` at the same upstream. If it
  cannot be installed or started, its rows and goals are skipped with the reason (--no-litellm
  skips it on purpose).
- client: this process, one httpx.AsyncClient per worker and target (keep-alive).

Bodies: direct and LiteLLM `{"model": "gpt-4o-mini", "messages": [{"role": "user",
"content": "hello"}]}` (+ `stream`, `stream_options.include_usage` like the gateway sends);
gateway `{"model": "openai:gpt-4o-mini", "input": {"prompt": "hello"}}` (+ `stream`).
Every reply is checked (text == the fixed reply). Latency: request sent → body read.
TTFT (streams): request sent → first SSE frame with non-empty delta content (direct: the
first content chunk; gateway: the first text delta frame, after model_selected); the
stream is then read to the end so that the connection goes back to the pool.

Concurrency 1: --requests-c1 rounds after a warm-up of one direct call and one through
Pluggably, interleaved (rotating which goes first); then as many rounds of direct + LiteLLM,
each gateway compared with the direct calls of its own pass (LiteLLM keeps working after it
answers, which slowed the next call when all three were interleaved). Every other level of
--concurrency (16, 64): that many closed-loop workers per target, direct, then the gateway,
then LiteLLM, until --min-requests-c64 have been sent and --min-s have passed (at most
--max-s). Added latency = target - direct at the same percentile. CPU per request is read
from each process's CPU time (psutil) over each run; each gateway's RSS (LiteLLM: with its
children) before traffic, sampled during its runs and after them. A LiteLLM reply that fails
the checks is counted as an error of that run (not raised); Pluggably's and the upstream's
are raised.

Goals: issue #5 (Pluggably alone: c1 added p50 / TTFT p50 ≤ 1 ms, c64 added p99 ≤ 85 ms,
c64 ≥ 400 req/s) and issue #9 (c1 added p50 ≤ 1 ms; at c64 Pluggably's added p99 ≤ LiteLLM's
/ 10 and its throughput ≥ 3x LiteLLM's, JSON and stream).

Profiling (--profile auto: only when a goal is missed): one more top-concurrency JSON run
through the gateway with `py-spy record --gil --threads --nonblocking --format raw`
attached (samples of whichever thread holds the GIL); the collapsed stacks of the
event-loop thread are summarised (one category per sample, database samples by operation,
pluggably functions inclusive, leaf functions) as ms of GIL time per request, next to the
threads' CPU time from psutil. The raw stacks stay in --profile-out for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from litellm_proxy import LITELLM_VERSION, MASTER_KEY, LiteLLMProxy
from litellm_proxy import start as start_litellm

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("pluggably")
PY_SPY = Path(sys.executable).with_name("py-spy")
ADMIN_KEY = "bench-admin-key-0123456789"
API_KEY = "sk-bench-0001"
MODEL = "gpt-4o-mini"
# 20 tokens in the simulator's sense (a run of non-space plus the spaces after it).
REPLY = (
    "The quick brown fox jumps over the lazy dog while seventeen small birds "
    "sing softly above the green river bank."
)
TOKENS = re.findall(r"\s*\S+\s*", REPLY)
PROMPT_TOKENS = 9
LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=2)
GOALS = {
    "c1_p50_added_ms": 1.0,
    "c64_p99_added_ms": 85.0,
    "c64_rps": 400.0,
    # issue #9: at concurrency 64, against LiteLLM on the same machine and upstream
    "c64_p99_added_vs_litellm_factor": 10.0,
    "c64_rps_vs_litellm_factor": 3.0,
}
TARGETS = ("direct", "gateway", "litellm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


# -- the fast upstream (a helper process: this file with --upstream-worker) ---------------------
def _http(status: int, reason: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nx-request-id: req_bench\r\n\r\n"
    )
    return head.encode() + body


def _completion(model: str, stream: bool, include_usage: bool) -> bytes:
    """The whole HTTP response for a chat completion: JSON, or chunked SSE."""
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": len(TOKENS),
        "total_tokens": PROMPT_TOKENS + len(TOKENS),
    }
    base = {"id": "chatcmpl-bench", "created": 1_715_367_049, "model": model}
    if not stream:
        body = base | {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_bench",
        }
        return _http(200, "OK", "application/json", json.dumps(body).encode())

    def chunk(delta: dict[str, Any], finish: str | None = None, *, last: bool = False) -> bytes:
        frame: dict[str, Any] = base | {
            "object": "chat.completion.chunk",
            "choices": []
            if last
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            frame["usage"] = usage if last else None
        return f"data: {json.dumps(frame)}\n\n".encode()

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": token}) for token in TOKENS]
    frames.append(chunk({}, "stop"))
    if include_usage:
        frames.append(chunk({}, last=True))
    frames.append(b"data: [DONE]\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
    )
    return head + b"".join(b"%X\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"


def _upstream_worker(latency_ms: float) -> None:
    """Serves until SIGTERM, then prints how many requests of each kind it answered."""
    delay = latency_ms / 1000
    cache: dict[tuple[str, bool, bool], bytes] = {}
    served: Counter[str] = Counter()
    not_found = _http(404, "Not Found", "application/json", b'{"error":{"message":"no"}}')
    unauthorized = _http(401, "Unauthorized", "application/json", b'{"error":{"message":"key"}}')
    models = _http(
        200,
        "OK",
        "application/json",
        json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode(),
    )

    def answer(request_line: str, headers: dict[str, str], body: bytes) -> bytes:
        method, path, _ = request_line.split(" ", 2)
        if headers.get("authorization") != f"Bearer {API_KEY}":
            served["unauthorized"] += 1
            return unauthorized
        if method == "GET" and path == "/v1/models":
            served["models"] += 1
            return models
        if method != "POST" or path != "/v1/chat/completions":
            served["not_found"] += 1
            return not_found
        request = json.loads(body)
        key = (
            str(request["model"]),
            bool(request.get("stream")),
            bool((request.get("stream_options") or {}).get("include_usage")),
        )
        served["stream" if key[1] else "json"] += 1
        reply = cache.get(key)
        if reply is None:
            reply = cache[key] = _completion(*key)
        return reply

    class Upstream(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = bytearray()

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                lines = self.buffer[:end].decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if len(self.buffer) < end + 4 + length:
                    return
                body = bytes(self.buffer[end + 4 : end + 4 + length])
                del self.buffer[: end + 4 + length]
                reply = answer(lines[0], headers, body)
                if delay:
                    asyncio.get_running_loop().call_later(delay, self._write, reply)
                else:
                    self.transport.write(reply)

        def _write(self, reply: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(reply)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(Upstream, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await stop.wait()
        server.close()
        print(json.dumps(dict(served)), flush=True)

    asyncio.run(serve())


def _sim_worker() -> None:
    """tests/fixtures/openai_sim.py's OpenAISim in this helper process, until SIGTERM."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.openai_sim import OpenAISim

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # for sigwait, in every thread
    sim = OpenAISim().start()
    sim.set_reply(MODEL, REPLY)
    print(sim.url.rsplit(":", 1)[1], flush=True)
    signal.sigwait([signal.SIGTERM])
    bodies = [r.body for r in sim.requests if r.method == "POST" and isinstance(r.body, dict)]
    served = Counter("stream" if b.get("stream") else "json" for b in bodies)
    sim.stop()
    print(json.dumps(dict(served)), flush=True)


class Upstream:
    def __init__(self, kind: str, latency_ms: float) -> None:
        flag = ["--upstream-worker"] if kind == "fast" else ["--sim-worker"]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *flag, "--upstream-latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"
        self.served: dict[str, int] = {}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            self.served = json.loads(line) if line.strip() else {}
        self.proc.wait(timeout=30)


# -- the gateway ---------------------------------------------------------------------------------
class Gateway:
    def __init__(self, upstream_url: str, tmp: Path) -> None:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
        env |= {
            "PLUGGABLY_DATA_DIR": str(tmp / "data"),
            "PLUGGABLY_SECRET_KEY_FILE": str(tmp / "config" / "secret.key"),
            "PLUGGABLY_ADMIN_KEY": ADMIN_KEY,
            "PLUGGABLY_LOG_LEVEL": "warning",
            "PLUGGABLY_BUNDLED_MODEL": "false",
            "PLUGGABLY_PROVIDERS__OPENAI__BASE_URL": upstream_url,
            "PLUGGABLY_PROVIDERS__OPENAI__API_KEY": API_KEY,
            "PLUGGABLY_SERVER_KEYS_ALLOWED": '["@admins"]',
        }
        self.log = tmp / "gateway.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN), "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.base = f"http://127.0.0.1:{port}"
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        self.ps = psutil.Process(self.proc.pid)

    def _wait_ready(self) -> None:
        with httpx.Client(base_url=self.base, timeout=2) as client:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
                try:
                    if client.get("/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError("gateway not ready after 30 s")

    def rss_mb(self) -> float:
        return round(int(self.ps.memory_info().rss) / 1e6, 1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- one request each way ------------------------------------------------------------------------
Sample = tuple[float, float | None]  # (latency ms, ttft ms or None)
Call = Callable[[], Awaitable[Sample]]


def _direct_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _gateway_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": f"openai:{MODEL}", "input": {"prompt": "hello"}}
    return body | {"stream": True} if stream else body


async def _json_call(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Sample:
    start = time.perf_counter()
    response = await client.post(path, json=body)
    data = response.json()
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, response.text
    text = data["output"]["text"] if "output" in data else data["choices"][0]["message"]["content"]
    assert text == REPLY, text
    return elapsed, None


async def _stream_call(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Sample:
    start = time.perf_counter()
    ttft: float | None = None
    parts: list[str] = []
    done = False
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000
                    parts.append(content)
    elapsed = (time.perf_counter() - start) * 1000
    assert done, "no [DONE]"
    assert "".join(parts) == REPLY, parts
    return elapsed, ttft


class TargetError(Exception):
    """A LiteLLM reply that failed the checks: counted by the run, not raised."""


def _calls(clients: dict[str, list[httpx.AsyncClient]], stream: bool) -> dict[str, list[Call]]:
    """One call per worker and way, each on the worker's own client."""
    call = _stream_call if stream else _json_call
    paths = {"direct": "/chat/completions", "gateway": "/v1/generate"}
    paths["litellm"] = "/v1/chat/completions"
    bodies = {"direct": _direct_body(stream), "gateway": _gateway_body(stream)}
    bodies["litellm"] = bodies["direct"]

    def bind(client: httpx.AsyncClient, way: str) -> Call:
        return lambda: call(client, paths[way], bodies[way])

    async def tolerant(inner: Call) -> Sample:
        try:
            return await inner()
        except (AssertionError, httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise TargetError(type(exc).__name__) from exc

    def bind_tolerant(client: httpx.AsyncClient, way: str) -> Call:
        inner = bind(client, way)
        return lambda: tolerant(inner)

    return {
        way: [(bind_tolerant if way == "litellm" else bind)(c, way) for c in cs]
        for way, cs in clients.items()
    }


# -- runs ----------------------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds of the processes (and the gateway's threads) over a window."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.loop_tid = procs["gateway"].pid  # on Linux the main thread's id is the pid

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, proc in self.procs.items():
            t = proc.cpu_times()
            out[name] = t.user + t.system
        gw = self.procs["gateway"]
        threads = {th.id: th.user_time + th.system_time for th in gw.threads()}
        out["gateway_loop"] = threads[self.loop_tid]
        t = psutil.cpu_times()  # the whole machine, to see what other processes took
        out["machine_busy"] = t.user + t.nice + t.system + t.irq + t.softirq + t.steal
        out["wall"] = time.perf_counter()
        return out

    def per_request(
        self, before: dict[str, Any], after: dict[str, Any], n: int
    ) -> dict[str, float]:
        n = max(n, 1)
        out = {f"{k}_cpu_ms": round((after[k] - before[k]) * 1000 / n, 3) for k in self.procs}
        loop = after["gateway_loop"] - before["gateway_loop"]
        out["gateway_event_loop_thread_cpu_ms"] = round(loop * 1000 / n, 3)
        ours = sum(after[k] - before[k] for k in self.procs)
        others = after["machine_busy"] - before["machine_busy"] - ours
        out["other_processes_cpus"] = round(others / (after["wall"] - before["wall"]), 2)
        return out


def _stats(samples: list[Sample]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    lat = [s[0] for s in samples]
    out: dict[str, Any] = {"n": len(samples), "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)}
    ttft = [s[1] for s in samples if s[1] is not None]
    if ttft:
        out |= {"ttft_p50_ms": _pct(ttft, 0.5), "ttft_p99_ms": _pct(ttft, 0.99)}
    return out


async def _concurrent(
    calls: list[Call], min_requests: int, min_s: float, max_s: float
) -> tuple[list[Sample], float, Counter[str]]:
    """One closed-loop worker per call (= per client)."""
    samples: list[Sample] = []
    errors: Counter[str] = Counter()
    sent = 0
    start = time.perf_counter()

    async def worker(call: Call) -> None:
        nonlocal sent
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= max_s or (sent >= min_requests and elapsed >= min_s):
                return
            sent += 1
            try:
                samples.append(await call())
            except TargetError as exc:
                errors[str(exc)] += 1

    await asyncio.gather(*(worker(call) for call in calls))
    return samples, time.perf_counter() - start, errors


async def _rss_sampler(rss_mb: Callable[[], float], peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


def _added(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, float]:
    keys = [k for k in ("p50_ms", "p99_ms", "ttft_p50_ms", "ttft_p99_ms") if k in gateway]
    return {k: round(gateway[k] - direct[k], 3) for k in keys}


def _with_added(result: dict[str, Any]) -> dict[str, Any]:
    """ "added": the gateway's over direct; "litellm_added": LiteLLM's (when it answered)."""
    result["added"] = _added(result["direct"], result["gateway"])
    if result.get("litellm", {}).get("n"):
        direct = result.get("direct_litellm_pass", result["direct"])
        result["litellm_added"] = _added(direct, result["litellm"])
    return result


async def _scenario_c1(calls: dict[str, list[Call]], n: int, meter: CpuMeter) -> dict[str, Any]:
    """``n`` rounds of direct + Pluggably calls, alternating which goes first; then, when
    LiteLLM runs, ``n`` rounds of direct + LiteLLM. Each gateway is compared with direct
    calls measured in its own pass: LiteLLM's proxy keeps working after it has answered
    (its logging callbacks), which on 2 CPUs slowed whichever call came next when all
    three were interleaved (Pluggably's added p50 1.1 ms instead of 0.9)."""
    calls1 = {way: cs[0] for way, cs in calls.items()}
    errors: Counter[str] = Counter()

    async def one(way: str) -> Sample | None:
        try:
            return await calls1[way]()
        except TargetError as exc:
            errors[str(exc)] += 1
            return None

    async def rounds(ways: list[str]) -> dict[str, list[Sample]]:
        for _ in range(30):  # warm-up: connections, caches, code paths
            for way in ways:
                await one(way)
        errors.clear()
        samples: dict[str, list[Sample]] = {way: [] for way in ways}
        for i in range(n):
            k = i % len(ways)
            for way in ways[k:] + ways[:k]:
                if (sample := await one(way)) is not None:
                    samples[way].append(sample)
        return samples

    before = meter.read()
    ours = rounds(["direct", "gateway"])
    result: dict[str, Any] = {way: _stats(s) for way, s in (await ours).items()}
    after = meter.read()
    result["cpu_per_pair"] = meter.per_request(before, after, n)
    if "litellm" in calls1:
        theirs = await rounds(["direct", "litellm"])
        result["litellm"] = _stats(theirs["litellm"]) | {"errors": dict(errors)}
        result["direct_litellm_pass"] = _stats(theirs["direct"])
    return _with_added(result)


async def _scenario_concurrent(
    calls: dict[str, list[Call]],
    concurrency: int,
    args: argparse.Namespace,
    meter: CpuMeter,
    rss: dict[str, Callable[[], float]],
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for way, way_calls in calls.items():
        level = way_calls[:concurrency]
        # warm-up at the same concurrency: every client, and the gateway's upstream pool,
        # opens its connections
        await _concurrent(level, 3 * concurrency, 0, 30)
        rss_mb = rss.get(way)
        peak = [rss_mb() if rss_mb else 0.0]
        stop = asyncio.Event()
        sampler = asyncio.create_task(_rss_sampler(rss_mb, peak, stop)) if rss_mb else None
        before = meter.read()
        samples, wall, errors = await _concurrent(
            level, args.min_requests_c64, args.min_s, args.max_s
        )
        after = meter.read()
        stop.set()
        if sampler:
            await sampler
        result[way] = (_stats(samples) if samples else {"n": 0}) | {
            "seconds": round(wall, 2),
            "rps": round(len(samples) / wall, 1),
            "errors": dict(errors),
            "cpu_per_request": meter.per_request(before, after, len(samples)),
            "rss_peak_mb": peak[0] if rss_mb else None,
        }
    return _with_added(result)


# -- profile -------------------------------------------------------------------------------------
PROFILE_RATE = 200  # py-spy samples per second
# Exclusive category per sample, first match wins: "anywhere" markers (a sample in which the
# library is on the stack belongs to it), then the leaf-most package that is not stdlib.
# py-spy shortens file names to the path below sys.path ("asyncio/events.py").
_ANYWHERE = [
    ("database", re.compile(r"^(sqlalchemy|aiosqlite|sqlite3)/")),
    ("upstream HTTP client (httpx, httpcore)", re.compile(r"^(httpx|httpcore)/")),
    ("logging (structlog, logging)", re.compile(r"^(structlog|logging)/")),
    ("metrics (prometheus_client)", re.compile(r"^prometheus_client/")),
    ("crypto (cryptography)", re.compile(r"^cryptography/")),
]
_LEAF = {
    "pydantic": "pydantic models (validation, serialization)",
    "pydantic_core": "pydantic models (validation, serialization)",
    "fastapi": "FastAPI (routing, dependencies, request/response handling)",
    "starlette": "Starlette + anyio (middleware, responses, task groups)",
    "anyio": "Starlette + anyio (middleware, responses, task groups)",
    "uvicorn": "uvicorn + httptools/h11 (HTTP server)",
    "h11": "uvicorn + httptools/h11 (HTTP server)",
    "httptools": "uvicorn + httptools/h11 (HTTP server)",
    "pluggably": "pluggably code itself",
}
# Database samples by operation: the first marker (in this order) in a frame of the stack. The
# connection's checkout/check-in wrap whatever statement opened or closed it.
_DB_OPS = [
    ("connection checkout (+ pool_pre_ping SELECT 1)", ("_ConnectionFairy._checkout", "_do_ping")),
    (
        "session close: connection reset (ROLLBACK) and check-in",
        (
            "Session.close (",
            "AsyncSession.close (",
            "_close_impl",
            "_finalize_fairy",
            "_reset (",
            "Connection.rollback",
        ),
    ),
    ("INSERT of the request row (start)", ("_emit_insert_statements",)),
    ("UPDATE of the request row (finish)", ("_emit_update_statements",)),
    (
        "SELECT by primary key (session.get)",
        ("Session.get (", "AsyncSession.get (", "_load_on_pk_identity"),
    ),
    (
        "other SELECTs (session.execute / scalar)",
        (
            "Session.execute (",
            "Session.scalar",
            "AsyncSession.execute (",
            "AsyncSession.scalar",
            "instances.",
        ),
    ),
    ("COMMIT", ("Session.commit (", "AsyncSession.commit (", "Connection.commit (")),
    (
        "flush bookkeeping (unit of work)",
        ("Session.flush (", "AsyncSession.flush (", "Session._flush ("),
    ),
    ("session creation", ("async_sessionmaker.__call__", "Session.__init__")),
]
_LOOP = "event loop itself (uvloop or asyncio internals: I/O, wake-ups, callbacks)"
# With uvloop the loop is C code: its own time shows as a leaf in the frame that started it.
_LOOP_LEAVES = (
    "Runner.run (asyncio/runners.py",
    "BaseEventLoop.run_until_complete (",
    "BaseEventLoop.run_forever (",
)


def _frame_file(frame: str) -> str:
    m = re.search(r"\(([^()]*):\d+\)$", frame)
    return m.group(1) if m else ""


def _frame_name(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def _top_package(file: str) -> str:
    return file.split("/", 1)[0].removesuffix(".py")


def _category(frames: list[str]) -> str:
    files = [_frame_file(f) for f in frames]
    # Below the event loop's Handle._run is the task or callback that runs; above it, the
    # loop and whoever started it (cli → uvicorn.run → asyncio.run).
    loop_frames = ("Handle._run (asyncio/events.py", "BaseEventLoop._run_once (asyncio/")
    runs = [i for i, f in enumerate(frames) if f.startswith(loop_frames)]
    if runs:
        files = files[runs[-1] + 1 :]
    elif frames and frames[-1].startswith(_LOOP_LEAVES):
        return _LOOP
    for name, pattern in _ANYWHERE:
        if any(pattern.search(f) for f in files):
            if name != "database":
                return name
            leaf = next((_top_package(f) for f in reversed(files) if f), "")
            if leaf == "aiosqlite":
                return "database: aiosqlite hand-off to its thread (queue put, GIL, wake-ups)"
            return "database: SQLAlchemy ORM/Core and sqlite3 (Python side)"
    for f in reversed(files):
        top = _top_package(f)
        if not f or f.startswith("<") or top in sys.stdlib_module_names:
            continue
        return _LEAF.get(top, f"other library ({top})")
    return _LOOP if runs or not frames else "stdlib (no event loop on the stack)"


def _db_operation(frames: list[str]) -> str:
    for name, markers in _DB_OPS:
        if any(m in f for f in frames for m in markers):
            return name
    return "other database work"


def _summarise_profile(raw: str, main_tid: int, requests: int) -> dict[str, Any]:
    """Collapsed py-spy stacks (--gil --threads) → ms per request of Python execution.

    With --gil py-spy keeps only the thread that holds the GIL, so the samples are
    Python running on a CPU; C code that releases the GIL (epoll_wait, socket sends,
    sqlite3's own work) is not in them but is in the thread's CPU time."""
    main: Counter[str] = Counter()
    other: Counter[str] = Counter()  # leaf functions of the other threads
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    db_ops: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        m = re.match(r"thread \((\d+)\)", thread)
        if not m or int(m.group(1)) != main_tid:
            other[_frame_name(frames[-1]) if frames else thread] += count
            continue
        category = _category(frames)
        main[category] += count
        if frames:
            leaves[_frame_name(frames[-1])] += count
        own = [_frame_name(f) for f in frames if _frame_file(f).startswith("pluggably/")]
        for name in set(own):
            inclusive[name] += count
        if category.startswith("database"):
            db_ops[_db_operation(frames)] += count
    total = sum(main.values())

    def table(counter: Counter[str], top: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "samples": n,
                "share": round(n / total, 4),
                "ms_per_request": round(n / PROFILE_RATE / requests * 1000, 3),
            }
            for name, n in counter.most_common(top)
        ]

    return {
        "samples_event_loop_thread": total,
        "samples_other_threads": sum(other.values()),
        "event_loop_sampled_ms_per_request": round(total / PROFILE_RATE / requests * 1000, 3),
        "event_loop_categories": table(main),
        "other_threads_leaf_functions": table(other, 10),
        "database_by_operation": table(db_ops),
        "pluggably_functions_inclusive": table(inclusive, 25),
        "leaf_functions": table(leaves, 20),
    }


async def _profile(
    calls: dict[str, list[Call]],
    args: argparse.Namespace,
    meter: CpuMeter,
    gw: Gateway,
    tmp: Path,
) -> dict[str, Any]:
    raw_path = Path(args.profile_out or tmp / "overhead-profile.txt")
    spy = await asyncio.create_subprocess_exec(
        *[
            str(PY_SPY),
            "record",
            "--pid",
            str(gw.proc.pid),
            "--duration",
            str(int(args.profile_s)),
            "--rate",
            str(PROFILE_RATE),
            "--nonblocking",
            "--gil",
            "--threads",
            "--format",
            "raw",
            "-o",
            str(raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # py-spy attaches
    before = meter.read()
    samples, wall, _ = await _concurrent(
        calls["gateway"], 10**9, args.profile_s - 1.5, args.profile_s - 1.5
    )
    after = meter.read()
    _, err = await spy.communicate()
    if spy.returncode != 0 or not raw_path.exists():
        return {"error": f"py-spy failed ({spy.returncode}): {err.decode()[-500:]}"}
    cpu = meter.per_request(before, after, len(samples))
    summary = _summarise_profile(raw_path.read_text(), gw.proc.pid, len(samples))
    return {
        "tool": f"py-spy record --rate {PROFILE_RATE} --nonblocking --gil --threads --format raw",
        "raw_stacks": str(raw_path),
        "load": f"gateway JSON, concurrency {len(calls['gateway'])}, while py-spy samples",
        "requests": len(samples),
        "seconds": round(wall, 2),
        "rps_while_profiling": round(len(samples) / wall, 1),
        "event_loop_thread_busy": round(
            (after["gateway_loop"] - before["gateway_loop"]) / wall,
            3,
        ),
        "cpu_per_request": cpu,
    } | summary


# -- main ----------------------------------------------------------------------------------------
def _goal(goal: str, issue: str, value: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    """ok None: not measured (LiteLLM unavailable); note says why."""
    row = {"goal": goal, "issue": issue, "value": value, "pass": ok}
    return row | {"note": note} if note else row


def _goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    limit_c1 = GOALS["c1_p50_added_ms"]
    if "c1" in results["json"]:
        for mode, key, issue in (
            ("json", "p50_ms", "#5, #9"),
            ("stream", "ttft_p50_ms", "#5"),
            ("stream", "p50_ms", "#9"),
        ):
            value = results[mode]["c1"]["added"][key]
            checks.append(
                _goal(
                    f"{mode}, concurrency 1: added {key.removesuffix('_ms')} ≤ 1 ms",
                    issue,
                    value,
                    value <= limit_c1,
                )
            )
    if "c64" not in results["json"]:
        return checks
    for mode, key in (("json", "p99_ms"), ("stream", "ttft_p99_ms")):
        c64 = results[mode]["c64"]
        value = c64["added"][key]
        checks.append(
            _goal(
                f"{mode}, concurrency 64: added {key.removesuffix('_ms')} ≤ 85 ms",
                "#5",
                value,
                value <= GOALS["c64_p99_added_ms"],
            )
        )
        rps = c64["gateway"]["rps"]
        checks.append(
            _goal(
                f"{mode}, concurrency 64: ≥ 400 requests/s through the gateway",
                "#5",
                rps,
                rps >= GOALS["c64_rps"],
            )
        )
    p99_factor = GOALS["c64_p99_added_vs_litellm_factor"]
    rps_factor = GOALS["c64_rps_vs_litellm_factor"]
    for mode in ("json", "stream"):
        c64 = results[mode]["c64"]
        p99_goal = f"{mode}, concurrency 64: added p99 ≤ LiteLLM's / {p99_factor:g}"
        rps_goal = f"{mode}, concurrency 64: requests/s ≥ {rps_factor:g}x LiteLLM's"
        ours_p99, ours_rps = c64["added"]["p99_ms"], c64["gateway"]["rps"]
        theirs = c64.get("litellm_added")
        if theirs is None:
            why = results.get("litellm", {}).get("skipped") or "LiteLLM answered no request"
            checks.append(_goal(p99_goal, "#9", ours_p99, None, why))
            checks.append(_goal(rps_goal, "#9", ours_rps, None, why))
            continue
        errors = sum(c64["litellm"]["errors"].values())
        note = f"LiteLLM: {errors} failed replies" if errors else ""
        p99_limit = round(theirs["p99_ms"] / p99_factor, 3)
        rps_limit = round(c64["litellm"]["rps"] * rps_factor, 1)
        checks.append(
            _goal(
                f"{p99_goal} ({theirs['p99_ms']} / {p99_factor:g} = {p99_limit} ms)",
                "#9",
                ours_p99,
                ours_p99 <= p99_limit,
                note,
            )
        )
        checks.append(
            _goal(
                f"{rps_goal} ({c64['litellm']['rps']} x {rps_factor:g} = {rps_limit})",
                "#9",
                ours_rps,
                ours_rps >= rps_limit,
                note,
            )
        )
    return checks


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    upstream = Upstream(args.upstream, args.upstream_latency_ms)
    litellm: LiteLLMProxy | None = None
    out: dict[str, Any] = {"upstream_url": upstream.base_url}
    try:
        gw = Gateway(upstream.base_url, tmp)
    except BaseException:
        upstream.close()
        raise
    try:
        if args.no_litellm:
            out["litellm"] = {"skipped": "--no-litellm", "pinned_version": LITELLM_VERSION}
        else:
            litellm, why = start_litellm(upstream.base_url, API_KEY, tmp, _free_port())
            if litellm is None:
                print(f"SKIPPING the LiteLLM rows: {why}", file=sys.stderr, flush=True)
                out["litellm"] = {"skipped": why, "pinned_version": LITELLM_VERSION}
            else:
                out["litellm"] = {
                    "version": litellm.version,
                    "pinned_version": LITELLM_VERSION,
                    "command": shlex.join(litellm.command),
                    "config": litellm.config,
                }
        procs = {
            "client": psutil.Process(),
            "gateway": gw.ps,
            "upstream": psutil.Process(upstream.proc.pid),
        }
        if litellm:
            procs["litellm"] = litellm.ps
        meter = CpuMeter(procs)
        rss = {"gateway": gw.rss_mb} | ({"litellm": litellm.rss_mb} if litellm else {})
        out["gateway_rss_mb"] = {"before": gw.rss_mb()}
        if litellm:
            out["litellm_rss_mb"] = {"before": litellm.rss_mb()}
        async with contextlib.AsyncExitStack() as stack:
            # One client (and so one keep-alive connection) per worker: a shared httpx pool
            # scans all its connections on every request (httpcore's
            # _assign_requests_to_connections), which at 64+ connections cost this process
            # ~7 ms of CPU per request and made the client the bottleneck.
            setups = {
                "direct": (upstream.base_url, {"Authorization": f"Bearer {API_KEY}"}),
                "gateway": (gw.base, {"X-API-Key": ADMIN_KEY}),
            }
            if litellm:
                setups["litellm"] = (litellm.base, {"Authorization": f"Bearer {MASTER_KEY}"})
            clients = {
                way: [
                    await stack.enter_async_context(
                        httpx.AsyncClient(base_url=base, headers=headers, limits=LIMITS, timeout=60)
                    )
                    for _ in range(max(args.concurrency))
                ]
                for way, (base, headers) in setups.items()
            }
            peaks: dict[str, list[float]] = {"gateway": [], "litellm": []}
            for mode in ("json", "stream"):
                calls = _calls(clients, stream=mode == "stream")
                out[mode] = {}
                for level in args.concurrency:
                    if level == 1:
                        out[mode]["c1"] = await _scenario_c1(calls, args.requests_c1, meter)
                        continue
                    run = await _scenario_concurrent(calls, level, args, meter, rss)
                    out[mode][f"c{level}"] = run
                    for way in rss:
                        peaks[way].append(run[way]["rss_peak_mb"])
                    print(f"{mode} c{level}: done", file=sys.stderr, flush=True)
            out["gateway_rss_mb"] |= {"peak": max(peaks["gateway"], default=None)}
            out["gateway_rss_mb"] |= {"after": gw.rss_mb()}
            if litellm:
                out["litellm_rss_mb"] |= {"peak": max(peaks["litellm"], default=None)}
                out["litellm_rss_mb"] |= {"after": litellm.rss_mb()}
            out["goals"] = _goals(out)
            missed = not all(g["pass"] for g in out["goals"] if g["pass"] is not None)
            if args.profile == "always" or (args.profile == "auto" and missed):
                calls = _calls({"gateway": clients["gateway"]}, stream=False)
                out["profile"] = await _profile(calls, args, meter, gw, tmp)
    finally:
        if litellm:
            litellm.close()
        gw.close()
        upstream.close()
    out["upstream_served"] = upstream.served
    return out


def _levels(text: str) -> list[int]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests-c1", type=int, default=300, help="rounds at concurrency 1")
    parser.add_argument(
        "--concurrency",
        type=_levels,
        default=[1, 16, 64],
        help="comma-separated levels [1,16,64]; 1 = the interleaved rounds",
    )
    parser.add_argument(
        "--min-requests-c64",
        type=int,
        default=3000,
        help="fewest requests per target in each concurrent run (every level but 1)",
    )
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM target")
    parser.add_argument("--min-s", type=float, default=5.0, help="shortest concurrent run")
    parser.add_argument("--max-s", type=float, default=20.0, help="longest concurrent run")
    parser.add_argument("--upstream", choices=("fast", "sim"), default="fast")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0)
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--profile-s", type=float, default=10.0)
    parser.add_argument("--profile-out", type=Path, help="raw py-spy stacks [a temp file]")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--upstream-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sim-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_worker:
        return _upstream_worker(args.upstream_latency_ms)
    if args.sim_worker:
        return _sim_worker()

    began = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp_name:
        if args.profile_out is None:
            args.profile_out = Path(tempfile.gettempdir()) / "pluggably-overhead-profile.txt"
        measured = asyncio.run(_run(args, Path(tmp_name)))

    from pluggably import __version__

    versions: dict[str, str | None] = {}
    packages = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "pydantic")
    for package in (*packages, "sqlalchemy", "aiosqlite"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = None
    versions["litellm"] = measured.get("litellm", {}).get("version")
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    options = {k: v for k, v in options.items() if not k.endswith("_worker")}
    result = {
        "benchmark": "overhead",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/overhead.py", *sys.argv[1:]]),
        "options": options,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_before": load_before,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "pluggably": __version__,
        "git": _git(),
        "versions": versions,
        "upstream": {
            "kind": args.upstream,
            "description": "raw asyncio HTTP/1.1 server, cached replies (this file)"
            if args.upstream == "fast"
            else "tests/fixtures/openai_sim.py OpenAISim (threaded http.server)",
            "latency_ms": args.upstream_latency_ms,
            "reply_tokens": len(TOKENS),
        },
        "goal": GOALS,
        **measured,
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    md = _markdown(result)
    (args.out / "overhead.md").write_text(md)
    print(md)


def _git() -> dict[str, Any]:
    """The commit the gateway ran from, and whether its sources differed from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "src_dirty": bool(git("status", "--porcelain", "src")),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


NAMES = {"direct": "direct", "gateway": "Pluggably", "litellm": "LiteLLM"}


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _latency_rows(r: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | target | n | p50 | p99 | added p50 | added p99 | TTFT p50 | TTFT p99 "
        "| added TTFT p50 | added TTFT p99 | req/s | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("json", "stream"):
        for level, s in r[mode].items():
            added = {"direct": {}, "gateway": s["added"], "litellm": s.get("litellm_added", {})}
            for way in (w for w in TARGETS if w in s):
                t, a = s[way], added[way]
                failed = sum((t.get("errors") or {}).values())
                cells = [
                    t["n"],
                    t.get("p50_ms"),
                    t.get("p99_ms"),
                    a.get("p50_ms"),
                    a.get("p99_ms"),
                    t.get("ttft_p50_ms"),
                    t.get("ttft_p99_ms"),
                    a.get("ttft_p50_ms"),
                    a.get("ttft_p99_ms"),
                    t.get("rps"),
                    failed if way == "litellm" else None,
                ]
                lines.append(
                    f"| {mode} c{level[1:]} | {NAMES[way]} | "
                    + " | ".join(_cell(c) for c in cells)
                    + " |"
                )
    return lines


def _versus_rows(r: dict[str, Any]) -> list[str]:
    """Pluggably against LiteLLM, per scenario: how many times lower / higher."""
    lines = [
        "| scenario | added p50 Pluggably / LiteLLM | added p99 Pluggably / LiteLLM "
        "| LiteLLM p99 ÷ Pluggably p99 | req/s Pluggably / LiteLLM | req/s ratio "
        "| RSS peak MB Pluggably / LiteLLM |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("json", "stream"):
        for level, s in r[mode].items():
            if "litellm_added" not in s:
                continue
            ours, theirs = s["added"], s["litellm_added"]
            p99_ratio = round(theirs["p99_ms"] / ours["p99_ms"], 1) if ours["p99_ms"] > 0 else "-"
            rps = (s["gateway"].get("rps"), s["litellm"].get("rps"))
            rps_ratio = round(rps[0] / rps[1], 1) if rps[0] and rps[1] else "-"
            rss = (s["gateway"].get("rss_peak_mb"), s["litellm"].get("rss_peak_mb"))
            lines.append(
                f"| {mode} c{level[1:]} | {ours['p50_ms']} / {theirs['p50_ms']} "
                f"| {ours['p99_ms']} / {theirs['p99_ms']} | {p99_ratio} "
                f"| {_cell(rps[0])} / {_cell(rps[1])} | {rps_ratio} "
                f"| {_cell(rss[0])} / {_cell(rss[1])} |"
            )
    return lines if len(lines) > 2 else []


def _result(ok: bool | None) -> str:
    return "SKIP" if ok is None else "PASS" if ok else "FAIL"


def _cpu_rows(r: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | target | client | Pluggably (all threads) | Pluggably loop | LiteLLM "
        "| upstream | req/s | other processes on the machine (CPUs busy) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("json", "stream"):
        for level, s in r[mode].items():
            if level == "c1":
                continue
            for way in (w for w in TARGETS if w in s):
                c = s[way]["cpu_per_request"]
                lines.append(
                    f"| {mode} c{level[1:]} | {NAMES[way]} | {c['client_cpu_ms']} "
                    f"| {c['gateway_cpu_ms']} | {c['gateway_event_loop_thread_cpu_ms']} "
                    f"| {_cell(c.get('litellm_cpu_ms'))} | {c['upstream_cpu_ms']} "
                    f"| {s[way]['rps']} | {c['other_processes_cpus']} |"
                )
    return lines


def _markdown(r: dict[str, Any]) -> str:
    m, up = r["machine"], r["upstream"]
    commit = (r["git"]["commit"] or "?")[:10] + (", src modified" if r["git"]["src_dirty"] else "")
    ll = r.get("litellm", {})
    if "skipped" in ll:
        litellm = f"LiteLLM: skipped ({ll['skipped']})."
    else:
        litellm = (
            f"LiteLLM {ll['version']} (litellm[proxy], bench/.venv-litellm): `{ll['command']}`, "
            "model_list `gpt-4o-mini` → `openai/gpt-4o-mini` at the same upstream."
        )
    lines = [
        litellm,
        "",
        *_latency_rows(r),
        "",
        *_versus_rows(r),
        "",
        "| goal | issue | value | result |",
        "|---|---|---|---|",
        *(
            f"| {g['goal']} | {g.get('issue', '')} | {g['value']} | {_result(g['pass'])}"
            + (f" ({g['note']})" if g.get("note") else "")
            + " |"
            for g in r["goals"]
        ),
        "",
        _littles_law(r),
        "",
        "CPU ms per request (client = this process, loop = the gateway's event-loop thread):",
        "",
        *_cpu_rows(r),
    ]
    rss, ll_rss = r["gateway_rss_mb"], r.get("litellm_rss_mb")
    if "c1" in r["json"]:
        c1 = {mode: r[mode]["c1"]["cpu_per_pair"] for mode in ("json", "stream")}
        lines += [
            "",
            f"Concurrency 1, per round (one direct call, one through Pluggably): gateway CPU "
            f"{c1['json']['gateway_cpu_ms']} ms (JSON), {c1['stream']['gateway_cpu_ms']} ms "
            f"(stream); other processes kept {c1['json']['other_processes_cpus']} / "
            f"{c1['stream']['other_processes_cpus']} CPUs busy.",
        ]
    lines += [
        "",
        f"Load average before the run: {r['machine']['load_average_before']}. Pluggably RSS: "
        f"{rss['before']} MB before traffic, {rss.get('peak')} MB peak, {rss['after']} MB "
        "after."
        + (
            f" LiteLLM RSS: {ll_rss['before']} MB before traffic, {ll_rss.get('peak')} MB "
            f"peak, {ll_rss['after']} MB after."
            if ll_rss
            else ""
        )
        + f" Upstream answered {r['upstream_served']}.",
    ]
    if "profile" in r:
        lines += ["", *_profile_markdown(r["profile"])]
    return (
        f"# Gateway overhead benchmark\n\n{r['date']} · pluggably {r['pluggably']} "
        f"(commit {commit}) · "
        f"{m['cpus']} CPUs ({m['cpu_model']}) · Python {m['python']} · {m['platform']}\n\n"
        f"Command: `{r['command']}` ({r['elapsed_s']} s in all). Upstream: {up['description']}, "
        f"{up['reply_tokens']}-token reply, {up['latency_ms']} ms added latency; client: "
        "httpx.AsyncClient in the benchmark process; all processes share the CPUs. "
        "Times in ms; added = target - direct at the same percentile; TTFT = first text "
        "delta; c1 = interleaved rounds, other levels = closed-loop workers per target.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _littles_law(r: dict[str, Any]) -> str:
    """In a closed loop, mean latency = concurrency / throughput, and p99 >= mean."""
    if "c64" not in r["json"]:
        return ""
    c = 64
    c64 = r["json"]["c64"]
    need = c / ((c64["direct"]["p99_ms"] + GOALS["c64_p99_added_ms"]) / 1000)
    return (
        f"Closed loop: {c} requests always in flight, so mean latency = {c} / throughput "
        f"(JSON through the gateway: {c} / {c64['gateway']['rps']} req/s = "
        f"{c / c64['gateway']['rps'] * 1000:.0f} ms). An added p99 of at most "
        f"{GOALS['c64_p99_added_ms']:.0f} ms therefore needs at least ~{need:.0f} req/s "
        f"(direct p99 {c64['direct']['p99_ms']} ms + {GOALS['c64_p99_added_ms']:.0f} ms ≥ mean)."
    )


def _profile_markdown(p: dict[str, Any]) -> list[str]:
    if "error" in p:
        return [f"Profile: {p['error']}"]
    cpu = p["cpu_per_request"]
    lines = [
        f"## Profile: {p['load']} ({p['requests']} requests in {p['seconds']} s, "
        f"{p['rps_while_profiling']} req/s under py-spy)",
        "",
        f"Gateway CPU per request {cpu['gateway_cpu_ms']} ms, of which the event-loop thread "
        f"{cpu['gateway_event_loop_thread_cpu_ms']} ms; that thread was on a CPU "
        f"{p['event_loop_thread_busy']:.0%} of the time. It held the GIL (py-spy --gil) "
        f"{p['event_loop_sampled_ms_per_request']} ms per request "
        f"({p['samples_event_loop_thread']} samples; {p['samples_other_threads']} on other "
        f"threads, whose GIL time is not in these tables). Raw stacks: `{p['raw_stacks']}`.",
        "",
        "| event-loop thread, by category | share | ms/request |",
        "|---|---|---|",
        *(
            f"| {row['name']} | {row['share']:.1%} | {row['ms_per_request']} |"
            for row in p["event_loop_categories"]
        ),
        "",
        "| event-loop thread, database samples by operation | share | ms/request |",
        "|---|---|---|",
        *(
            f"| {row['name']} | {row['share']:.1%} | {row['ms_per_request']} |"
            for row in p["database_by_operation"]
        ),
        "",
        "| pluggably function (inclusive) | share | ms/request |",
        "|---|---|---|",
        *(
            f"| `{row['name']}` | {row['share']:.1%} | {row['ms_per_request']} |"
            for row in p["pluggably_functions_inclusive"][:15]
        ),
        "",
        f"Other threads (aiosqlite's one thread per connection): "
        f"{round(cpu['gateway_cpu_ms'] - cpu['gateway_event_loop_thread_cpu_ms'], 3)} ms CPU "
        "per request (mostly sqlite3 itself, without the GIL); where they held the GIL:",
        "",
        "| other threads: leaf function | samples | ms/request |",
        "|---|---|---|",
        *(
            f"| `{row['name']}` | {row['samples']} | {row['ms_per_request']} |"
            for row in p["other_threads_leaf_functions"]
        ),
    ]
    return lines


if __name__ == "__main__":
    main()
