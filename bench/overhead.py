"""Gateway overhead: the same OpenAI-compatible upstream called directly, through
Pluggably's `POST /v1/generate` and through LiteLLM's proxy (`/v1/chat/completions`), JSON
and SSE, driven by wrk over a sweep of concurrency levels.

Run:  .venv/bin/python bench/overhead.py [--concurrency 1,4,16,64,256] [--seconds 10]
      [--warmup-s 2] [--max-run-s 60] [--wrk-threads 1] [--requests-c1 300]
      [--upstream fast|sim] [--upstream-latency-ms 0] [--profile auto|always|never]
      [--no-litellm]
Full run (what bench/results/overhead.md holds): .venv/bin/python bench/overhead.py
Smoke run: .venv/bin/python bench/overhead.py --concurrency 1,64 --seconds 3 --warmup-s 1
      --requests-c1 30 --profile never --out /tmp/overhead-smoke
Needs wrk (a C load generator; Debian/Ubuntu: `apt-get install wrk`, or --wrk PATH).

Processes sharing the machine's CPUs:
- upstream: by default a tiny raw-asyncio HTTP/1.1 server (this file, --upstream-worker)
  serving /v1/chat/completions as JSON or chunked SSE (role chunk, 20 content chunks,
  finish chunk, usage chunk, [DONE]) with one fixed 20-token reply, keep-alive, no delay
  unless --upstream-latency-ms; replies are built once and cached, so it costs a few tens
  of microseconds per request. `--upstream sim` runs tests/fixtures/openai_sim.py's
  threaded OpenAISim in a helper process instead.
- gateway: the real `pluggably serve` (SQLite, admin key, server-side OpenAI key), its
  OpenAI provider pointed at the upstream.
- litellm: LiteLLM's proxy (bench/litellm_proxy.py: `litellm[proxy]==LITELLM_VERSION` in
  bench/.venv-litellm, installed on first use; one worker, no database, master key, local
  cost map, telemetry off), its model_list pointing `gpt-4o-mini` at the same upstream. If it
  cannot be installed or started, its rows and goals are skipped with the reason (--no-litellm
  skips it on purpose).
- wrk: the load generator for every throughput and latency number (one thread unless
  --wrk-threads; keep-alive connections = the concurrency level; closed loop: each
  connection sends its next request when the previous reply has been read to its end).
- this process: starts the others, checks each target's reply once per mode with httpx,
  runs the concurrency-1 TTFT rounds (below), reads CPU times, and otherwise waits.

Bodies: direct and LiteLLM `{"model": "gpt-4o-mini", "messages": [{"role": "user",
"content": "hello"}]}` (+ `stream`, `stream_options.include_usage` like the gateway sends);
gateway `{"model": "openai:gpt-4o-mini", "input": {"prompt": "hello"}}` (+ `stream`).

What runs where (in this order: checks, TTFT rounds, sweep):
- Check (httpx, this process): before each target's runs in each mode, one call whose reply
  is checked (text == the fixed reply; streams: every delta, then [DONE]). Pluggably's or the
  upstream's failure stops the bench; LiteLLM's skips its runs in that mode, with the reason.
- Sweep (wrk): for JSON, then stream, at each level of --concurrency, direct, Pluggably and
  LiteLLM in turn: wait until the servers' CPU is quiet (at most 10 s: LiteLLM keeps working
  after its clients have gone), a --warmup-s wrk run at the same level (connections, pools,
  caches), then the measured wrk run of --seconds, lengthened to ~10 mean latencies (by
  Little's law from the warm-up, at most --max-run-s) where the target is slow, since wrk
  opens its connections afresh and drops the replies still in flight when it stops. wrk's
  Lua script sets the POST body and headers, and its done() prints one JSON line: requests,
  duration, errors by kind (connect, read, write, status = HTTP status > 399, timeout) and
  latency percentiles p50/p90/p99/p99.9/max in ms. Latency = request written → reply read
  to its end (streams: the whole chunked SSE body, so added stream latency is that of the
  full stream). req/s = replies without an error status / duration; every error wrk reports
  is a failure in the tables. Saturation throughput = the highest req/s over the sweep (and
  its level). Added latency = target - direct at the same level and percentile.
- CPU: wrk's own (getrusage(RUSAGE_CHILDREN) around each wrk process / wall time: its
  share of one core, to show the load generator was not the bottleneck) and each server's
  CPU per request (psutil, over each measured run), RSS sampled during the runs.
- TTFT at concurrency 1 (httpx, this process; wrk cannot see when the first SSE frame
  arrives): --requests-c1 interleaved rounds of one direct and one Pluggably stream
  (rotating which goes first) after a warm-up, then as many rounds of direct + LiteLLM, each
  gateway compared with the direct calls of its own pass. TTFT = request sent → first SSE
  frame with non-empty delta content (gateway: the first text delta, after model_selected).

Goals: issue #5 (Pluggably alone: c1 added p50 (JSON) / TTFT p50 (stream) ≤ 1 ms,
c64 added p99 ≤ 85 ms and ≥ 400 req/s, JSON and stream; the stream p99 goal was on TTFT when
the client was Python and is now on the full stream, which is stricter) and issue #9 (c1
added p50 ≤ 1 ms, JSON and stream; at c64 Pluggably's added p99 ≤ LiteLLM's / 10 and its
throughput ≥ 3x LiteLLM's, JSON and stream). They need levels 1 and 64 in the sweep.

Profiling (--profile auto: only when a goal is missed): one more wrk JSON run through the
gateway at concurrency 64 (or the highest level) in the background, with `py-spy record
--gil --threads --nonblocking --format raw` attached (samples of whichever thread holds the
GIL); the collapsed stacks of the event-loop thread are summarised (one category per sample,
database samples by operation, pluggably functions inclusive, leaf functions) as ms of GIL
time per request, next to the threads' CPU time from psutil. The raw stacks stay in
--profile-out for a flame graph. py-spy comes from the venv or PATH (`pip install py-spy`);
without it the profile says so and the bench goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
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
PY_SPY = Path(sys.executable).with_name("py-spy")  # else from PATH
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
MODES = ("json", "stream")
PERCENTILES = ("p50", "p90", "p99", "p99.9", "max")
WRK_ERRORS = ("connect", "read", "write", "status", "timeout")
# wrk's CPU share of one core above which it may have been the bottleneck.
WRK_BUSY_SHARE = 0.8


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
    def __init__(
        self, upstream_url: str, tmp: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        """``extra_env``: more settings, or a PYTHONPATH to run other sources."""
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
        env |= extra_env or {}
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
    """A LiteLLM reply that failed its check: its runs are skipped, not the bench."""


class Target:
    """One way to the upstream: where it listens, how to authenticate, what to send."""

    def __init__(
        self, base: str, path: str, headers: dict[str, str], body: Callable[[bool], dict[str, Any]]
    ) -> None:
        self.base, self.path, self.headers, self.body = base, path, headers, body

    @property
    def url(self) -> str:
        return self.base + self.path


def _targets(upstream: Upstream, gw: Gateway, litellm: LiteLLMProxy | None) -> dict[str, Target]:
    # upstream.base_url ends with /v1, like an OpenAI base URL
    targets = {
        "direct": Target(
            upstream.base_url,
            "/chat/completions",
            {"Authorization": f"Bearer {API_KEY}"},
            _direct_body,
        ),
        "gateway": Target(gw.base, "/v1/generate", {"X-API-Key": ADMIN_KEY}, _gateway_body),
    }
    if litellm:
        targets["litellm"] = Target(
            litellm.base,
            "/v1/chat/completions",
            {"Authorization": f"Bearer {MASTER_KEY}"},
            _direct_body,
        )
    return targets


def _calls(
    clients: dict[str, httpx.AsyncClient], targets: dict[str, Target], stream: bool
) -> dict[str, Call]:
    """One checked call per way; LiteLLM's failures become TargetError."""
    call = _stream_call if stream else _json_call

    def bind(way: str) -> Call:
        target = targets[way]
        return lambda: call(clients[way], target.path, target.body(stream))

    async def tolerant(inner: Call) -> Sample:
        try:
            return await inner()
        except (AssertionError, httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise TargetError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc

    def bind_tolerant(way: str) -> Call:
        inner = bind(way)
        return lambda: tolerant(inner)

    return {way: (bind_tolerant if way == "litellm" else bind)(way) for way in clients}


# -- CPU -----------------------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds of the processes (and the gateway's threads) over a window."""

    SERVERS = ("gateway", "upstream", "litellm")

    def __init__(self, procs: dict[str, list[psutil.Process]]) -> None:
        self.procs = procs
        self.loop_tid = procs["gateway"][0].pid  # on Linux the main thread's id is the pid

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, procs in self.procs.items():
            out[name] = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    out[name] += t.user + t.system
        gw = self.procs["gateway"][0]
        threads = {th.id: th.user_time + th.system_time for th in gw.threads()}
        out["gateway_loop"] = threads[self.loop_tid]
        t = psutil.cpu_times()  # the whole machine, to see what other processes took
        out["machine_busy"] = t.user + t.nice + t.system + t.irq + t.softirq + t.steal
        out["wall"] = time.perf_counter()
        return out

    def servers_busy(self, before: dict[str, Any], after: dict[str, Any]) -> float:
        """CPUs the servers kept busy between two readings."""
        used = sum(after[k] - before[k] for k in self.SERVERS if k in self.procs)
        return float(used / (after["wall"] - before["wall"]))

    def per_request(
        self, before: dict[str, Any], after: dict[str, Any], n: int, wrk_cpu_s: float = 0.0
    ) -> dict[str, float]:
        n = max(n, 1)
        out = {f"{k}_cpu_ms": round((after[k] - before[k]) * 1000 / n, 3) for k in self.procs}
        loop = after["gateway_loop"] - before["gateway_loop"]
        out["gateway_event_loop_thread_cpu_ms"] = round(loop * 1000 / n, 3)
        if wrk_cpu_s:
            out["wrk_cpu_ms"] = round(wrk_cpu_s * 1000 / n, 4)
        ours = sum(after[k] - before[k] for k in self.procs) + wrk_cpu_s
        others = after["machine_busy"] - before["machine_busy"] - ours
        out["other_processes_cpus"] = round(others / (after["wall"] - before["wall"]), 2)
        return out


def _settle(meter: CpuMeter, max_s: float = 10.0, idle_cpus: float = 0.1) -> float:
    """Waits until the servers are quiet (LiteLLM keeps working after its clients have
    gone); returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_s:
        before = meter.read()
        time.sleep(0.3)
        if meter.servers_busy(before, meter.read()) < idle_cpus:
            break
    return round(time.perf_counter() - start, 2)


# -- concurrency 1, time to first token (httpx in this process) ----------------------------------
def _stats(samples: list[Sample]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    lat = [s[0] for s in samples]
    out: dict[str, Any] = {"n": len(samples), "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)}
    ttft = [s[1] for s in samples if s[1] is not None]
    if ttft:
        out |= {"ttft_p50_ms": _pct(ttft, 0.5), "ttft_p99_ms": _pct(ttft, 0.99)}
    return out


def _added(
    direct: dict[str, Any], target: dict[str, Any], keys: tuple[str, ...]
) -> dict[str, float]:
    return {
        k: round(target[k] - direct[k], 3)
        for k in keys
        if target.get(k) is not None and direct.get(k) is not None
    }


TTFT_KEYS = ("p50_ms", "p99_ms", "ttft_p50_ms", "ttft_p99_ms")


async def _ttft_c1(calls: dict[str, Call], n: int, meter: CpuMeter) -> dict[str, Any]:
    """Streams at concurrency 1: ``n`` rounds of direct + Pluggably calls, alternating which
    goes first; then, when LiteLLM runs, ``n`` rounds of direct + LiteLLM. Each gateway is
    compared with direct calls measured in its own pass: LiteLLM's proxy keeps working after
    it has answered (its logging callbacks), which on 2 CPUs slowed whichever call came next
    when all three were interleaved."""
    errors: Counter[str] = Counter()

    async def one(way: str) -> Sample | None:
        try:
            return await calls[way]()
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
    result: dict[str, Any] = {
        way: _stats(s) for way, s in (await rounds(["direct", "gateway"])).items()
    }
    result["cpu_per_pair"] = meter.per_request(before, meter.read(), n)
    result["added"] = _added(result["direct"], result["gateway"], TTFT_KEYS)
    if "litellm" in calls:
        theirs = await rounds(["direct", "litellm"])
        result["litellm"] = _stats(theirs["litellm"]) | {"errors": dict(errors)}
        result["direct_litellm_pass"] = _stats(theirs["direct"])
        if result["litellm"]["n"]:
            result["litellm_added"] = _added(
                result["direct_litellm_pass"], result["litellm"], TTFT_KEYS
            )
    return result


# -- wrk -----------------------------------------------------------------------------------------
# wrk calls done() once, after the run: one JSON line (times in ms) that this file parses.
# summary.requests counts every complete reply (error statuses included); latency holds
# those that came within --timeout.
LUA_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d}',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout)
  if summary.requests > 0 and latency.max > 0 then
    local p = {}
    for _, q in ipairs({50, 90, 99, 99.9}) do
      p[#p + 1] = string.format("%.3f", latency:percentile(q) / 1000)
    end
    out = out .. string.format(
      ', "latency_ms": {"p50": %s, "p90": %s, "p99": %s, "p99.9": %s, "max": %.3f, ' ..
      '"mean": %.3f}', p[1], p[2], p[3], p[4], latency.max / 1000, latency.mean / 1000)
  end
  io.write("WRK_JSON " .. out .. "}\n")
end
"""


class WrkError(Exception):
    """wrk ended without its summary (it could not connect, or crashed)."""


def _lua_script(target: Target, stream: bool) -> str:
    body = json.dumps(target.body(stream))
    assert "]==]" not in body
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [==[{body}]==]",
        'wrk.headers["Content-Type"] = "application/json"',
        *(f'wrk.headers["{name}"] = "{value}"' for name, value in target.headers.items()),
    ]
    return "\n".join(lines) + "\n" + LUA_DONE


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[0]
    return first.split(" Copyright")[0].strip()  # "wrk debian/4.1.0-3+b2 [epoll]"


def _wrk(
    args: argparse.Namespace,
    script: Path,
    url: str,
    connections: int,
    seconds: int,
    sample: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One wrk process; calls ``sample`` every 0.25 s while it runs."""
    threads = min(args.wrk_threads, connections)
    argv = [
        *(args.wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"),
        *("--timeout", f"{args.wrk_timeout_s}s", "-s", str(script), url),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            out, err = proc.communicate(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            if time.perf_counter() - start > seconds + args.wrk_timeout_s + 30:
                proc.kill()
            if sample:
                sample()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    line = next((x for x in out.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        tail = (err.strip() or out.strip())[-500:]
        raise WrkError(f"wrk exited with {proc.returncode} and no summary: {tail}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = {kind: int(raw["errors"][kind]) for kind in WRK_ERRORS}
    duration = raw["duration_us"] / 1e6
    latency = raw.get("latency_ms") or {}
    return {
        "connections": connections,
        "wrk_threads": threads,
        "seconds": round(duration, 2),
        "requests": int(raw["requests"]),
        "rps": round((raw["requests"] - errors["status"]) / duration, 1),
        "failed": sum(errors.values()),
        "errors": {kind: n for kind, n in errors.items() if n},
        **{f"{p}_ms": latency.get(p) for p in (*PERCENTILES, "mean")},
        "wrk_cpu_s": round(cpu, 3),
        "wrk_cpu_share": round(cpu / wall, 3),
    }


def _measure(
    args: argparse.Namespace,
    meter: CpuMeter,
    script: Path,
    url: str,
    level: int,
    rss_mb: Callable[[], float] | None,
) -> dict[str, Any]:
    """Settle, warm up at ``level``, then the measured run (with CPU and RSS)."""
    settle_s = _settle(meter)
    warm = _wrk(args, script, url, level, args.warmup_s)
    # Little's law: mean latency = level / throughput. wrk opens its connections afresh and
    # drops what is in flight when it stops, so a slow target needs a longer run.
    mean_s = level / warm["rps"] if warm["rps"] else float(args.max_run_s)
    seconds = int(min(args.max_run_s, max(args.seconds, -(-10 * mean_s // 1))))
    peak = [rss_mb() if rss_mb else 0.0]

    def sample() -> None:
        if rss_mb:
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], rss_mb())

    before = meter.read()
    run = _wrk(args, script, url, level, seconds, sample)
    after = meter.read()
    ok = run["requests"] - run["errors"].get("status", 0)
    return run | {
        "cpu_per_request": meter.per_request(before, after, ok, run["wrk_cpu_s"]),
        "rss_peak_mb": peak[0] if rss_mb else None,
        "warmup": {k: warm[k] for k in ("seconds", "requests", "rps", "failed")},
        "settle_s": settle_s,
    }


WRK_ADDED = ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms")


def _with_added(level: dict[str, Any]) -> dict[str, Any]:
    """ "added": the gateway's over direct; "litellm_added": LiteLLM's (when it ran)."""
    direct = level.get("direct", {})
    for way, key in (("gateway", "added"), ("litellm", "litellm_added")):
        if level.get(way, {}).get("p50_ms") is not None and direct.get("p50_ms") is not None:
            level[key] = _added(direct, level[way], WRK_ADDED)
    return level


def _saturation(out: dict[str, Any]) -> dict[str, Any]:
    """Per mode and target: the highest req/s over the sweep, its level and latencies."""
    sat: dict[str, Any] = {}
    for mode in MODES:
        sat[mode] = {}
        for way in TARGETS:
            runs = [
                (s[way]["rps"], int(level[1:]))
                for level, s in out[mode].items()
                if s.get(way, {}).get("rps") is not None
            ]
            if not runs:
                continue
            rps, level = max(runs)
            run = out[mode][f"c{level}"][way]
            sat[mode][way] = {
                "rps": rps,
                "level": level,
                "p50_ms": run["p50_ms"],
                "p99_ms": run["p99_ms"],
                "failed": run["failed"],
            }
    return sat


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


def _profile(
    args: argparse.Namespace,
    meter: CpuMeter,
    gw: Gateway,
    script: Path,
    url: str,
    level: int,
) -> dict[str, Any]:
    """py-spy attached to the gateway while wrk (its own process) loads it."""
    raw_path = Path(args.profile_out)
    py_spy = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if py_spy is None:
        return {"error": f"py-spy not found (`{sys.executable} -m pip install py-spy`)"}
    spy = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(gw.proc.pid)),
            *("--duration", str(int(args.profile_s)), "--rate", str(PROFILE_RATE)),
            *("--nonblocking", "--gil", "--threads", "--format", "raw", "-o", str(raw_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # py-spy attaches
    before = meter.read()
    run = _wrk(args, script, url, level, max(1, int(args.profile_s - 1.5)))
    after = meter.read()
    _, err = spy.communicate()
    if spy.returncode != 0 or not raw_path.exists():
        return {"error": f"py-spy failed ({spy.returncode}): {err.decode()[-500:]}"}
    ok = run["requests"] - run["errors"].get("status", 0)
    cpu = meter.per_request(before, after, ok, run["wrk_cpu_s"])
    summary = _summarise_profile(raw_path.read_text(), gw.proc.pid, ok)
    return {
        "tool": f"py-spy record --rate {PROFILE_RATE} --nonblocking --gil --threads --format raw",
        "raw_stacks": str(raw_path),
        "load": f"wrk: gateway JSON, concurrency {level}, while py-spy samples",
        "requests": ok,
        "failed": run["failed"],
        "seconds": run["seconds"],
        "rps_while_profiling": run["rps"],
        "event_loop_thread_busy": round(
            (after["gateway_loop"] - before["gateway_loop"]) / (after["wall"] - before["wall"]),
            3,
        ),
        "cpu_per_request": cpu,
    } | summary


# -- goals ---------------------------------------------------------------------------------------
def _goal(goal: str, issue: str, value: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    """ok None: not measured (LiteLLM unavailable); note says why."""
    row = {"goal": goal, "issue": issue, "value": value, "pass": ok}
    return row | {"note": note} if note else row


def _failed_note(run: dict[str, Any], who: str = "") -> str:
    return f"{who}{run['failed']} failed: {run['errors']}" if run.get("failed") else ""


def _at_most(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


def _goals_c1(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    limit = GOALS["c1_p50_added_ms"]
    for mode, issue in (("json", "#5, #9"), ("stream", "#9")):
        if "c1" not in results[mode]:
            continue
        c1 = results[mode]["c1"]
        value = c1.get("added", {}).get("p50_ms")
        what = "added p50" + (" (full stream)" if mode == "stream" else "")
        checks.append(
            _goal(
                f"{mode}, concurrency 1: {what} ≤ {limit:g} ms",
                issue,
                value,
                _at_most(value, limit),
                _failed_note(c1["gateway"]),
            )
        )
    if "ttft_c1" in results:
        value = results["ttft_c1"]["added"].get("ttft_p50_ms")
        checks.append(
            _goal(
                f"stream, concurrency 1: added TTFT p50 ≤ {limit:g} ms (httpx client)",
                "#5",
                value,
                _at_most(value, limit),
            )
        )
    return checks


def _goals_c64(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    limit = GOALS["c64_p99_added_ms"]
    for mode in MODES:
        c64 = results[mode]["c64"]
        value = c64.get("added", {}).get("p99_ms")
        what = "added p99" + (" (full stream; was TTFT p99)" if mode == "stream" else "")
        note = _failed_note(c64["gateway"])
        checks.append(
            _goal(
                f"{mode}, concurrency 64: {what} ≤ {limit:g} ms",
                "#5",
                value,
                _at_most(value, limit),
                note,
            )
        )
        rps = c64["gateway"].get("rps")
        checks.append(
            _goal(
                f"{mode}, concurrency 64: ≥ {GOALS['c64_rps']:g} requests/s through the gateway",
                "#5",
                rps,
                rps is not None and rps >= GOALS["c64_rps"],
                note,
            )
        )
    return checks


def _goals_vs_litellm(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    p99_factor = GOALS["c64_p99_added_vs_litellm_factor"]
    rps_factor = GOALS["c64_rps_vs_litellm_factor"]
    for mode in MODES:
        c64 = results[mode]["c64"]
        p99_goal = f"{mode}, concurrency 64: added p99 ≤ LiteLLM's / {p99_factor:g}"
        rps_goal = f"{mode}, concurrency 64: requests/s ≥ {rps_factor:g}x LiteLLM's"
        ours_p99, ours_rps = c64.get("added", {}).get("p99_ms"), c64["gateway"].get("rps")
        theirs = c64.get("litellm_added")
        if theirs is None:
            ll = c64.get("litellm", {})
            why = (
                results.get("litellm", {}).get("skipped")
                or ll.get("skipped")
                or ll.get("error")
                or "LiteLLM answered no request"
            )
            checks.append(_goal(p99_goal, "#9", ours_p99, None, why))
            checks.append(_goal(rps_goal, "#9", ours_rps, None, why))
            continue
        note = _failed_note(c64["litellm"], "LiteLLM: ")
        p99_limit = round(theirs["p99_ms"] / p99_factor, 3)
        rps_limit = round(c64["litellm"]["rps"] * rps_factor, 1)
        checks.append(
            _goal(
                f"{p99_goal} ({theirs['p99_ms']} / {p99_factor:g} = {p99_limit} ms)",
                "#9",
                ours_p99,
                _at_most(ours_p99, p99_limit),
                note,
            )
        )
        checks.append(
            _goal(
                f"{rps_goal} ({c64['litellm']['rps']} x {rps_factor:g} = {rps_limit})",
                "#9",
                ours_rps,
                ours_rps is not None and ours_rps >= rps_limit,
                note,
            )
        )
    return checks


def _goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = _goals_c1(results)
    if all("c64" in results[mode] for mode in MODES):
        checks += _goals_c64(results) + _goals_vs_litellm(results)
    return checks


# -- the run -------------------------------------------------------------------------------------
async def _checks_and_ttft(
    args: argparse.Namespace, targets: dict[str, Target], meter: CpuMeter, out: dict[str, Any]
) -> dict[str, dict[str, str]]:
    """One checked call per target and mode, then the TTFT rounds; returns, per mode, the
    targets whose check failed (LiteLLM only: the others raise) and why."""
    failed: dict[str, dict[str, str]] = {mode: {} for mode in MODES}
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            way: await stack.enter_async_context(
                httpx.AsyncClient(base_url=t.base, headers=t.headers, limits=LIMITS, timeout=60)
            )
            for way, t in targets.items()
        }
        for mode in MODES:
            for way, call in _calls(clients, targets, stream=mode == "stream").items():
                try:
                    await call()
                except TargetError as exc:
                    failed[mode][way] = f"its reply failed the check: {exc}"
                    print(f"{way} {mode}: {failed[mode][way]}", file=sys.stderr, flush=True)
        if args.requests_c1 > 0:
            calls = _calls(clients, targets, stream=True)
            calls = {way: c for way, c in calls.items() if way not in failed["stream"]}
            out["ttft_c1"] = await _ttft_c1(calls, args.requests_c1, meter)
    return failed


def _sweep(
    args: argparse.Namespace,
    targets: dict[str, Target],
    meter: CpuMeter,
    rss: dict[str, Callable[[], float]],
    failed: dict[str, dict[str, str]],
    tmp: Path,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        out[mode] = {}
        scripts = {}
        for way, target in targets.items():
            scripts[way] = tmp / f"wrk-{way}-{mode}.lua"
            scripts[way].write_text(_lua_script(target, stream=mode == "stream"))
        for level in args.concurrency:
            runs: dict[str, Any] = {}
            for way, target in targets.items():
                if way in failed[mode]:
                    runs[way] = {"skipped": failed[mode][way]}
                    continue
                try:
                    runs[way] = _measure(args, meter, scripts[way], target.url, level, rss.get(way))
                except WrkError as exc:
                    if way != "litellm":
                        raise
                    runs[way] = {"error": str(exc)}
                r = runs[way]
                print(
                    f"{mode} c{level} {way}: {r.get('rps')} req/s, p50 {r.get('p50_ms')} ms, "
                    f"p99 {r.get('p99_ms')} ms, failed {r.get('failed')}, "
                    f"wrk {r.get('wrk_cpu_share')} of a core{r.get('error', '')}",
                    file=sys.stderr,
                    flush=True,
                )
            out[mode][f"c{level}"] = _with_added(runs)
    return out


def _start_litellm(
    args: argparse.Namespace, upstream: Upstream, tmp: Path, out: dict[str, Any]
) -> LiteLLMProxy | None:
    if args.no_litellm:
        out["litellm"] = {"skipped": "--no-litellm", "pinned_version": LITELLM_VERSION}
        return None
    litellm, why = start_litellm(upstream.base_url, API_KEY, tmp, _free_port())
    if litellm is None:
        print(f"SKIPPING the LiteLLM rows: {why}", file=sys.stderr, flush=True)
        out["litellm"] = {"skipped": why, "pinned_version": LITELLM_VERSION}
        return None
    out["litellm"] = {
        "version": litellm.version,
        "pinned_version": LITELLM_VERSION,
        "command": shlex.join(litellm.command),
        "config": litellm.config,
    }
    return litellm


def _peak(out: dict[str, Any], way: str) -> float | None:
    peaks: list[float] = [
        s[way]["rss_peak_mb"]
        for mode in MODES
        for s in out[mode].values()
        if s.get(way, {}).get("rss_peak_mb") is not None
    ]
    return max(peaks, default=None)


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
        litellm = _start_litellm(args, upstream, tmp, out)
        procs = {
            "bench": [psutil.Process()],
            "gateway": [gw.ps],
            "upstream": [psutil.Process(upstream.proc.pid)],
        }
        if litellm:
            procs["litellm"] = [litellm.ps, *litellm.ps.children(recursive=True)]
        meter = CpuMeter(procs)
        rss = {"gateway": gw.rss_mb} | ({"litellm": litellm.rss_mb} if litellm else {})
        out["gateway_rss_mb"] = {"before": gw.rss_mb()}
        if litellm:
            out["litellm_rss_mb"] = {"before": litellm.rss_mb()}
        targets = _targets(upstream, gw, litellm)
        failed = await _checks_and_ttft(args, targets, meter, out)
        out |= _sweep(args, targets, meter, rss, failed, tmp)
        out["saturation"] = _saturation(out)
        out["gateway_rss_mb"] |= {"peak": _peak(out, "gateway"), "after": gw.rss_mb()}
        if litellm:
            out["litellm_rss_mb"] |= {"peak": _peak(out, "litellm"), "after": litellm.rss_mb()}
        out["goals"] = _goals(out)
        missed = not all(g["pass"] for g in out["goals"] if g["pass"] is not None)
        if args.profile == "always" or (args.profile == "auto" and missed):
            level = 64 if 64 in args.concurrency else max(args.concurrency)
            script = tmp / "wrk-gateway-json.lua"
            out["profile"] = _profile(args, meter, gw, script, targets["gateway"].url, level)
    finally:
        if litellm:
            litellm.close()
        gw.close()
        upstream.close()
    out["upstream_served"] = upstream.served
    return out


# -- main ----------------------------------------------------------------------------------------
def _levels(text: str) -> list[int]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return levels


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency",
        type=_levels,
        default=[1, 4, 16, 64, 256],
        help="comma-separated levels of the wrk sweep [1,4,16,64,256]",
    )
    parser.add_argument("--seconds", type=int, default=10, help="shortest measured wrk run")
    parser.add_argument("--warmup-s", type=int, default=2, help="wrk warm-up before each run")
    parser.add_argument(
        "--max-run-s", type=int, default=60, help="longest measured run (slow targets)"
    )
    parser.add_argument("--wrk", default=shutil.which("wrk"), help="wrk binary [from PATH]")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument(
        "--wrk-timeout-s", type=int, default=30, help="wrk --timeout: slower replies are errors"
    )
    parser.add_argument(
        "--requests-c1",
        type=int,
        default=300,
        help="httpx rounds for TTFT of streams at concurrency 1 (0: none)",
    )
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM target")
    parser.add_argument("--upstream", choices=("fast", "sim"), default="fast")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0)
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--profile-s", type=float, default=10.0)
    parser.add_argument("--profile-out", type=Path, help="raw py-spy stacks [a temp file]")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--upstream-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sim-worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = _arguments()
    args = parser.parse_args()
    if args.upstream_worker:
        return _upstream_worker(args.upstream_latency_ms)
    if args.sim_worker:
        return _sim_worker()
    if not args.wrk or not Path(args.wrk).exists():
        parser.error(
            "wrk not found: this bench drives its load with wrk; install it "
            "(Debian/Ubuntu: `apt-get install wrk`) or pass --wrk PATH"
        )

    began = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    git = _git()  # the sources the gateway starts from (others may commit during the run)
    with tempfile.TemporaryDirectory() as tmp_name:
        if args.profile_out is None:
            args.profile_out = Path(tempfile.gettempdir()) / "pluggably-overhead-profile.txt"
        measured = asyncio.run(_run(args, Path(tmp_name)))

    from pluggably import __version__

    versions: dict[str, str | None] = {}
    packages = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "aiohttp", "pydantic")
    for package in (*packages, "sqlalchemy", "aiosqlite"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = None
    versions["litellm"] = measured.get("litellm", {}).get("version")
    versions["wrk"] = _wrk_version(args.wrk)
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
        "git": git | {"changed_during_run": _git() != git},
        "versions": versions,
        "upstream": {
            "kind": args.upstream,
            "description": "raw asyncio HTTP/1.1 server, cached replies (this file)"
            if args.upstream == "fast"
            else "tests/fixtures/openai_sim.py OpenAISim (threaded http.server)",
            "latency_ms": args.upstream_latency_ms,
            "reply_tokens": len(TOKENS),
        },
        "load_generator": {
            "tool": versions["wrk"],
            "threads": args.wrk_threads,
            "timeout_s": args.wrk_timeout_s,
            "seconds": args.seconds,
            "warmup_s": args.warmup_s,
            "max_run_s": args.max_run_s,
        },
        "goal": GOALS,
        **measured,
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    result["wrk_cpu_share_max"] = _wrk_busiest(result)
    result["other_load_cpus"] = _other_load(result)
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


# -- markdown ------------------------------------------------------------------------------------
NAMES = {"direct": "direct", "gateway": "Pluggably", "litellm": "LiteLLM"}


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _runs(r: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(mode, level, way, run, added) for every wrk run that has numbers."""
    rows = []
    for mode in MODES:
        for level, s in r[mode].items():
            added = {"direct": {}, "gateway": s.get("added", {})}
            added["litellm"] = s.get("litellm_added", {})
            for way in TARGETS:
                if "requests" in s.get(way, {}):
                    rows.append((mode, level, way, s[way], added[way]))
    return rows


def _wrk_busiest(r: dict[str, Any]) -> dict[str, Any] | None:
    runs = _runs(r)
    if not runs:
        return None
    mode, level, way, run, _ = max(runs, key=lambda row: row[3]["wrk_cpu_share"])
    return {
        "share_of_one_core": run["wrk_cpu_share"],
        "run": f"{mode} {level} {NAMES[way]}",
        "rps": run["rps"],
        "wrk_threads": run["wrk_threads"],
    }


def _other_load(r: dict[str, Any]) -> dict[str, Any]:
    """CPUs that processes other than wrk, the servers and this one kept busy: the load
    average is read once, before the run; this is measured during every run."""
    out: dict[str, Any] = {}
    for mode in MODES:
        values = [
            row[3]["cpu_per_request"]["other_processes_cpus"] for row in _runs(r) if row[0] == mode
        ]
        if values:
            out[mode] = {"mean": round(sum(values) / len(values), 2), "max": max(values)}
    if "ttft_c1" in r:
        out["ttft_c1"] = r["ttft_c1"]["cpu_per_pair"]["other_processes_cpus"]
    return out


def _other_load_statement(r: dict[str, Any]) -> str:
    load = r.get("other_load_cpus") or {}
    parts = [
        f"{mode} runs {load[mode]['mean']} on average (at most {load[mode]['max']})"
        for mode in MODES
        if mode in load
    ]
    if "ttft_c1" in load:
        parts.append(f"TTFT rounds {load['ttft_c1']}")
    if not parts:
        return ""
    busiest = max([load[m]["max"] for m in MODES if m in load] + [load.get("ttft_c1", 0)])
    note = (
        " Other work shared the 2 CPUs during part of the run, so those numbers are lower "
        "than on a quiet machine."
        if busiest > 0.25
        else ""
    )
    return (
        "CPUs kept busy by other processes on the machine (not wrk, the servers or the "
        f"benchmark process) during the measured runs: {'; '.join(parts)}.{note}"
    )


def _failures(run: dict[str, Any]) -> str:
    if not run.get("failed"):
        return "0"
    return f"{run['failed']} (" + ", ".join(f"{k} {n}" for k, n in run["errors"].items()) + ")"


def _saturation_rows(r: dict[str, Any]) -> list[str]:
    lines = [
        "| target | JSON req/s (at level) | p50 / p99 there | stream req/s (at level) "
        "| p50 / p99 there |",
        "|---|---|---|---|---|",
    ]
    for way in TARGETS:
        cells = []
        for mode in MODES:
            s = r["saturation"][mode].get(way)
            if s is None:
                cells += ["-", "-"]
                continue
            failed = f", {s['failed']} failed" if s["failed"] else ""
            cells += [f"{s['rps']} (c{s['level']}{failed})", f"{s['p50_ms']} / {s['p99_ms']}"]
        if any(c != "-" for c in cells):
            lines.append(f"| {NAMES[way]} | " + " | ".join(cells) + " |")
    return lines


def _latency_rows(r: dict[str, Any]) -> list[str]:
    lines = [
        "| mode | level | target | requests | req/s | failed | p50 | p90 | p99 | p99.9 | max "
        "| added p50 | added p99 | added p99.9 | run s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for level, s in r[mode].items():
            for way in TARGETS:
                run = s.get(way)
                if run is None:
                    continue
                if "requests" not in run:
                    why = run.get("skipped") or run.get("error")
                    lines.append(f"| {mode} | {level} | {NAMES[way]} | not run: {why} |")
                    continue
                a = {"direct": {}, "gateway": s.get("added", {})}.get(way)
                a = s.get("litellm_added", {}) if a is None else a
                cells = [
                    run["requests"],
                    run["rps"],
                    _failures(run),
                    *(run[f"{p}_ms"] for p in PERCENTILES),
                    a.get("p50_ms"),
                    a.get("p99_ms"),
                    a.get("p99.9_ms"),
                    run["seconds"],
                ]
                lines.append(
                    f"| {mode} | {level} | {NAMES[way]} | " + " | ".join(map(_cell, cells)) + " |"
                )
    return lines


def _versus_rows(r: dict[str, Any]) -> list[str]:
    """Pluggably against LiteLLM, per mode and level: how many times lower / higher."""
    lines = [
        "| scenario | added p50 Pluggably / LiteLLM | added p99 Pluggably / LiteLLM "
        "| added p99 LiteLLM ÷ Pluggably | req/s Pluggably / LiteLLM | req/s ratio "
        "| RSS peak MB Pluggably / LiteLLM |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for level, s in r[mode].items():
            if "litellm_added" not in s or "added" not in s:
                continue
            ours, theirs = s["added"], s["litellm_added"]
            p99 = (ours.get("p99_ms"), theirs.get("p99_ms"))
            p99_ratio = round(p99[1] / p99[0], 1) if p99[0] and p99[1] is not None else "-"
            rps = (s["gateway"]["rps"], s["litellm"]["rps"])
            rps_ratio = round(rps[0] / rps[1], 1) if rps[0] and rps[1] else "-"
            rss = (s["gateway"].get("rss_peak_mb"), s["litellm"].get("rss_peak_mb"))
            lines.append(
                f"| {mode} {level} | {ours.get('p50_ms')} / {theirs.get('p50_ms')} "
                f"| {ours.get('p99_ms')} / {theirs.get('p99_ms')} | {p99_ratio} "
                f"| {_cell(rps[0])} / {_cell(rps[1])} | {rps_ratio} "
                f"| {_cell(rss[0])} / {_cell(rss[1])} |"
            )
    return lines if len(lines) > 2 else []


def _result(ok: bool | None) -> str:
    return "SKIP" if ok is None else "PASS" if ok else "FAIL"


def _cpu_rows(r: dict[str, Any]) -> list[str]:
    lines = [
        "| mode | level | target | req/s | wrk, share of one core | wrk | Pluggably "
        "(all threads) | Pluggably loop | LiteLLM | upstream | other processes (CPUs busy) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, level, way, run, _ in _runs(r):
        c = run["cpu_per_request"]
        lines.append(
            f"| {mode} | {level} | {NAMES[way]} | {run['rps']} | {run['wrk_cpu_share']:.0%} "
            f"| {c.get('wrk_cpu_ms')} | {c['gateway_cpu_ms']} "
            f"| {c['gateway_event_loop_thread_cpu_ms']} | {_cell(c.get('litellm_cpu_ms'))} "
            f"| {c['upstream_cpu_ms']} | {c['other_processes_cpus']} |"
        )
    return lines


def _wrk_statement(r: dict[str, Any]) -> str:
    """How busy wrk was: overall, and in the runs through a gateway."""
    busiest = r.get("wrk_cpu_share_max")
    if busiest is None:
        return ""
    share, threads = busiest["share_of_one_core"], busiest["wrk_threads"]
    verdict = (
        "below one core in every run, so the load generator was not the bottleneck"
        if share < WRK_BUSY_SHARE * threads
        else f"close to the {threads} core(s) its thread(s) can use: that run may be limited "
        "by wrk itself (rerun it with --wrk-threads 2)"
    )
    gateways = [row for row in _runs(r) if row[2] != "direct"]
    through = ""
    if gateways:
        mode, level, way, run, _ = max(gateways, key=lambda row: row[3]["wrk_cpu_share"])
        through = (
            f" Through a gateway wrk used at most {run['wrk_cpu_share']:.0%} of one core "
            f"({mode} {level} {NAMES[way]}, {run['rps']} req/s)."
        )
    return (
        f"wrk's own CPU (getrusage of the wrk process / wall time) was at most {share:.0%} of "
        f"one core, in {busiest['run']} ({busiest['rps']} req/s, {threads} wrk thread): "
        f"{verdict}.{through}"
    )


def _ttft_rows(r: dict[str, Any]) -> list[str]:
    t = r.get("ttft_c1")
    if not t:
        return []
    lines = [
        f"Concurrency 1, time to first token: wrk cannot see when the first SSE frame arrives, "
        f"so TTFT comes from {r['options']['requests_c1']} interleaved rounds per gateway with "
        "httpx in the benchmark process (one direct and one gateway stream per round, "
        "alternating which goes first; each gateway against the direct calls of its own "
        "pass). TTFT = first SSE frame with text; latency = whole stream read.",
        "",
        "| target | n | p50 | p99 | TTFT p50 | TTFT p99 | added p50 | added TTFT p50 "
        "| added TTFT p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("direct", t["direct"], {}), ("gateway", t["gateway"], t["added"])]
    if "litellm" in t:
        rows.append(("litellm", t["litellm"], t.get("litellm_added", {})))
    for way, s, a in rows:
        cells = [
            s["n"],
            s.get("p50_ms"),
            s.get("p99_ms"),
            s.get("ttft_p50_ms"),
            s.get("ttft_p99_ms"),
            a.get("p50_ms"),
            a.get("ttft_p50_ms"),
            a.get("ttft_p99_ms"),
        ]
        lines.append(f"| {NAMES[way]} | " + " | ".join(map(_cell, cells)) + " |")
    cpu = t["cpu_per_pair"]
    lines += [
        "",
        f"Per round (one direct stream, one through Pluggably): gateway CPU "
        f"{cpu['gateway_cpu_ms']} ms, benchmark process {cpu['bench_cpu_ms']} ms; other "
        f"processes kept {cpu['other_processes_cpus']} CPUs busy.",
    ]
    return lines


def _markdown(r: dict[str, Any]) -> str:
    m, up, lg = r["machine"], r["upstream"], r["load_generator"]
    commit = (r["git"]["commit"] or "?")[:10] + (", src modified" if r["git"]["src_dirty"] else "")
    if r["git"].get("changed_during_run"):
        commit += "; the checkout changed during the run"
    ll = r.get("litellm", {})
    if "skipped" in ll:
        litellm = f"LiteLLM: skipped ({ll['skipped']})."
    else:
        litellm = (
            f"LiteLLM {ll['version']} (litellm[proxy], bench/.venv-litellm): `{ll['command']}`, "
            "model_list `gpt-4o-mini` → `openai/gpt-4o-mini` at the same upstream."
        )
    rss, ll_rss = r["gateway_rss_mb"], r.get("litellm_rss_mb")
    lines = [
        litellm,
        "",
        "## Saturation throughput (the highest req/s over the sweep)",
        "",
        *_saturation_rows(r),
        "",
        "## Every run",
        "",
        *_latency_rows(r),
        "",
        "## Pluggably against LiteLLM",
        "",
        *_versus_rows(r),
        "",
        "## Goals (issues #5 and #9)",
        "",
        "The stream goal at concurrency 64 was on TTFT p99 while the client was Python; wrk "
        "measures the whole stream, so it is now on the full stream's added p99 (stricter).",
        "",
        "| goal | issue | value | result |",
        "|---|---|---|---|",
        *(
            f"| {g['goal']} | {g.get('issue', '')} | {_cell(g['value'])} | {_result(g['pass'])}"
            + (f" ({g['note']})" if g.get("note") else "")
            + " |"
            for g in r["goals"]
        ),
        "",
        _littles_law(r),
        "",
        *_ttft_rows(r),
        "",
        "## CPU",
        "",
        _wrk_statement(r),
        "",
        "CPU ms per request (measured runs; loop = the gateway's event-loop thread; other "
        "processes = the machine's busy CPUs minus wrk, the servers and the benchmark process):",
        "",
        *_cpu_rows(r),
        "",
        f"Load average before the run: {m['load_average_before']}. {_other_load_statement(r)}",
        "",
        f"Pluggably RSS: "
        f"{rss['before']} MB before traffic, {rss.get('peak')} MB peak, {rss['after']} MB "
        "after."
        + (
            f" LiteLLM RSS (with its children): {ll_rss['before']} MB before traffic, "
            f"{ll_rss.get('peak')} MB peak, {ll_rss['after']} MB after."
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
        f"{up['reply_tokens']}-token reply, {up['latency_ms']} ms added latency. Load: "
        f"{lg['tool']}, {lg['threads']} thread, keep-alive connections = the level, closed "
        f"loop; each measured run ≥ {lg['seconds']} s (~10 mean latencies for slow targets, "
        f"≤ {lg['max_run_s']} s) after a {lg['warmup_s']} s warm-up at the same level; wrk "
        f"--timeout {lg['timeout_s']} s. wrk, upstream and gateways share the CPUs. Times in "
        "ms; latency = request written → reply read to its end (streams: the whole SSE body); "
        "added = target - direct at the same level and percentile; req/s = replies without "
        "an error status per second; failed = every error wrk reports (connect, read, write, "
        "HTTP status > 399, timeout).\n\n" + "\n".join(lines) + "\n"
    )


def _littles_law(r: dict[str, Any]) -> str:
    """In a closed loop, mean latency = concurrency / throughput, and p99 >= mean."""
    c64 = r["json"].get("c64", {})
    if c64.get("gateway", {}).get("rps") is None or c64["direct"].get("p99_ms") is None:
        return ""
    c = 64
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
