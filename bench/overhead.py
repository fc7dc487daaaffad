"""Gateway overhead: the same OpenAI-compatible upstream called directly and through
`POST /v1/generate`, JSON and SSE, at concurrency 1 and 64.

Run:  .venv/bin/python bench/overhead.py [--requests-c1 300] [--min-requests-c64 3000]
      [--upstream fast|sim] [--upstream-latency-ms 0] [--profile auto|always|never]

Three processes share the machine's CPUs:
- upstream: by default a tiny raw-asyncio HTTP/1.1 server (this file, --upstream-worker)
  serving /v1/chat/completions as JSON or chunked SSE (role chunk, 20 content chunks,
  finish chunk, usage chunk, [DONE]) with one fixed 20-token reply, keep-alive, no delay
  unless --upstream-latency-ms; replies are built once and cached, so it costs a few tens
  of microseconds per request. `--upstream sim` runs tests/fixtures/openai_sim.py's
  threaded OpenAISim in a helper process instead (it saturates first at concurrency 64).
- gateway: the real `pluggably serve` (SQLite, admin key, server-side OpenAI key), its
  OpenAI provider pointed at the upstream; its httpx client uses HTTP/1.1 keep-alive.
- client: this process, one httpx.AsyncClient per worker and target (keep-alive).

Bodies: direct `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content":
"hello"}]}` (+ `stream`, `stream_options.include_usage` like the gateway sends);
gateway `{"model": "openai:gpt-4o-mini", "input": {"prompt": "hello"}}` (+ `stream`).
Every reply is checked (text == the fixed reply). Latency: request sent → body read.
TTFT (streams): request sent → first SSE frame with non-empty delta content (direct: the
first content chunk; gateway: the first text delta frame, after model_selected); the
stream is then read to the end so that the connection goes back to the pool.

Concurrency 1: --requests-c1 pairs after a warm-up, direct and gateway interleaved
(alternating which goes first). Concurrency 64: 64 closed-loop workers per path, direct
then gateway, until --min-requests-c64 have been sent and --min-s have passed (at most
--max-s). Added latency = gateway - direct at the same percentile. CPU per request is
read from each process's CPU time (psutil) over each run; gateway RSS before traffic,
sampled during the runs and after them.

Profiling (--profile auto: only when a goal is missed): one more concurrency-64 JSON run
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
GOALS = {"c1_p50_added_ms": 1.0, "c64_p99_added_ms": 85.0, "c64_rps": 400.0}


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
        return round(self.ps.memory_info().rss / 1e6, 1)

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


def _calls(clients: dict[str, list[httpx.AsyncClient]], stream: bool) -> dict[str, list[Call]]:
    """One call per worker and way, each on the worker's own client."""
    call = _stream_call if stream else _json_call
    paths = {"direct": "/chat/completions", "gateway": "/v1/generate"}
    bodies = {"direct": _direct_body(stream), "gateway": _gateway_body(stream)}

    def bind(client: httpx.AsyncClient, way: str) -> Call:
        return lambda: call(client, paths[way], bodies[way])

    return {way: [bind(c, way) for c in cs] for way, cs in clients.items()}


# -- runs ----------------------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds of the three processes (and the gateway's threads) over a window."""

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
        out = {f"{k}_cpu_ms": round((after[k] - before[k]) * 1000 / n, 3) for k in self.procs}
        loop = after["gateway_loop"] - before["gateway_loop"]
        out["gateway_event_loop_thread_cpu_ms"] = round(loop * 1000 / n, 3)
        ours = sum(after[k] - before[k] for k in self.procs)
        others = after["machine_busy"] - before["machine_busy"] - ours
        out["other_processes_cpus"] = round(others / (after["wall"] - before["wall"]), 2)
        return out


def _stats(samples: list[Sample]) -> dict[str, Any]:
    lat = [s[0] for s in samples]
    out: dict[str, Any] = {"n": len(samples), "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)}
    ttft = [s[1] for s in samples if s[1] is not None]
    if ttft:
        out |= {"ttft_p50_ms": _pct(ttft, 0.5), "ttft_p99_ms": _pct(ttft, 0.99)}
    return out


async def _concurrent(
    calls: list[Call], min_requests: int, min_s: float, max_s: float
) -> tuple[list[Sample], float]:
    """One closed-loop worker per call (= per client)."""
    samples: list[Sample] = []
    sent = 0
    start = time.perf_counter()

    async def worker(call: Call) -> None:
        nonlocal sent
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= max_s or (sent >= min_requests and elapsed >= min_s):
                return
            sent += 1
            samples.append(await call())

    await asyncio.gather(*(worker(call) for call in calls))
    return samples, time.perf_counter() - start


async def _rss_sampler(gw: Gateway, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], gw.rss_mb())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


def _added(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, float]:
    keys = [k for k in ("p50_ms", "p99_ms", "ttft_p50_ms", "ttft_p99_ms") if k in gateway]
    return {k: round(gateway[k] - direct[k], 3) for k in keys}


async def _scenario_c1(calls: dict[str, list[Call]], n: int, meter: CpuMeter) -> dict[str, Any]:
    calls1 = {way: cs[0] for way, cs in calls.items()}
    for _ in range(30):  # warm-up: connections, caches, code paths
        await calls1["direct"]()
        await calls1["gateway"]()
    samples: dict[str, list[Sample]] = {"direct": [], "gateway": []}
    before = meter.read()
    for i in range(n):
        for way in ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct"):
            samples[way].append(await calls1[way]())
    after = meter.read()
    result = {way: _stats(s) for way, s in samples.items()}
    result["added"] = _added(result["direct"], result["gateway"])
    result["cpu_per_pair"] = meter.per_request(before, after, n)
    return result


async def _scenario_c64(
    calls: dict[str, list[Call]], args: argparse.Namespace, meter: CpuMeter, gw: Gateway
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for way in ("direct", "gateway"):
        # warm-up at the same concurrency: every client, and the gateway's upstream pool,
        # opens its connections
        await _concurrent(calls[way], 3 * len(calls[way]), 0, 30)
        peak = [gw.rss_mb()]
        stop = asyncio.Event()
        sampler = asyncio.create_task(_rss_sampler(gw, peak, stop))
        before = meter.read()
        samples, wall = await _concurrent(calls[way], args.min_requests_c64, args.min_s, args.max_s)
        after = meter.read()
        stop.set()
        await sampler
        result[way] = _stats(samples) | {
            "seconds": round(wall, 2),
            "rps": round(len(samples) / wall, 1),
            "cpu_per_request": meter.per_request(before, after, len(samples)),
            "gateway_rss_peak_mb": peak[0],
        }
    result["added"] = _added(result["direct"], result["gateway"])
    return result


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
    samples, wall = await _concurrent(
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
        "load": "gateway JSON, concurrency 64, while py-spy samples",
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
def _goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for mode, key in (("json", "p50_ms"), ("stream", "ttft_p50_ms")):
        value = results[mode]["c1"]["added"][key]
        checks.append(
            {
                "goal": f"{mode}, concurrency 1: added {key.removesuffix('_ms')} ≤ 1 ms",
                "value": value,
                "pass": value <= GOALS["c1_p50_added_ms"],
            }
        )
    for mode, key in (("json", "p99_ms"), ("stream", "ttft_p99_ms")):
        c64 = results[mode]["c64"]
        value = c64["added"][key]
        checks.append(
            {
                "goal": f"{mode}, concurrency 64: added {key.removesuffix('_ms')} ≤ 85 ms",
                "value": value,
                "pass": value <= GOALS["c64_p99_added_ms"],
            }
        )
        rps = c64["gateway"]["rps"]
        checks.append(
            {
                "goal": f"{mode}, concurrency 64: ≥ 400 requests/s through the gateway",
                "value": rps,
                "pass": rps >= GOALS["c64_rps"],
            }
        )
    return checks


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    upstream = Upstream(args.upstream, args.upstream_latency_ms)
    try:
        gw = Gateway(upstream.base_url, tmp)
    except BaseException:
        upstream.close()
        raise
    out: dict[str, Any] = {"upstream_url": upstream.base_url}
    try:
        meter = CpuMeter(
            {
                "client": psutil.Process(),
                "gateway": gw.ps,
                "upstream": psutil.Process(upstream.proc.pid),
            }
        )
        out["gateway_rss_mb"] = {"before": gw.rss_mb()}
        async with contextlib.AsyncExitStack() as stack:
            # One client (and so one keep-alive connection) per worker: a shared httpx pool
            # scans all its connections on every request (httpcore's
            # _assign_requests_to_connections), which at 64+ connections cost this process
            # ~7 ms of CPU per request and made the client the bottleneck.
            setups = {
                "direct": (upstream.base_url, {"Authorization": f"Bearer {API_KEY}"}),
                "gateway": (gw.base, {"X-API-Key": ADMIN_KEY}),
            }
            clients = {
                way: [
                    await stack.enter_async_context(
                        httpx.AsyncClient(base_url=base, headers=headers, limits=LIMITS, timeout=60)
                    )
                    for _ in range(args.concurrency)
                ]
                for way, (base, headers) in setups.items()
            }
            peaks = []
            for mode in ("json", "stream"):
                calls = _calls(clients, stream=mode == "stream")
                c1 = await _scenario_c1(calls, args.requests_c1, meter)
                c64 = await _scenario_c64(calls, args, meter, gw)
                peaks += [c64[w]["gateway_rss_peak_mb"] for w in ("direct", "gateway")]
                out[mode] = {"c1": c1, "c64": c64}
                print(f"{mode}: done", file=sys.stderr, flush=True)
            out["gateway_rss_mb"] |= {"peak": max(peaks), "after": gw.rss_mb()}
            out["goals"] = _goals(out)
            missed = not all(g["pass"] for g in out["goals"])
            if args.profile == "always" or (args.profile == "auto" and missed):
                calls = _calls(clients, stream=False)
                out["profile"] = await _profile(calls, args, meter, gw, tmp)
    finally:
        gw.close()
        upstream.close()
    out["upstream_served"] = upstream.served
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests-c1", type=int, default=300, help="pairs at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--min-requests-c64", type=int, default=3000)
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

    versions = {}
    packages = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "pydantic")
    for package in (*packages, "sqlalchemy", "aiosqlite"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = None
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


def _markdown(r: dict[str, Any]) -> str:
    m, up = r["machine"], r["upstream"]
    commit = (r["git"]["commit"] or "?")[:10] + (", src modified" if r["git"]["src_dirty"] else "")
    lines = [
        "| scenario | n direct / gateway | direct p50 | direct p99 | gateway p50 | gateway p99 "
        "| added p50 | added p99 | gateway req/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("json", "stream"):
        for conc in ("c1", "c64"):
            s = r[mode][conc]
            d, g, a = s["direct"], s["gateway"], s["added"]
            rps = g.get("rps", "-")
            label = f"{mode} c{conc[1:]}"
            n = f"{d['n']} / {g['n']}"
            lines.append(
                f"| {label} latency | {n} | {d['p50_ms']} | {d['p99_ms']} | {g['p50_ms']} "
                f"| {g['p99_ms']} | {a['p50_ms']} | {a['p99_ms']} | {rps} |"
            )
            if mode == "stream":
                lines.append(
                    f"| {label} TTFT | {n} | {d['ttft_p50_ms']} | {d['ttft_p99_ms']} "
                    f"| {g['ttft_p50_ms']} | {g['ttft_p99_ms']} | {a['ttft_p50_ms']} "
                    f"| {a['ttft_p99_ms']} | {rps} |"
                )
    lines += [
        "",
        "| goal | value | result |",
        "|---|---|---|",
        *(
            f"| {g['goal']} | {g['value']} | {'PASS' if g['pass'] else 'FAIL'} |"
            for g in r["goals"]
        ),
        "",
        _littles_law(r),
        "",
        "CPU ms per request (concurrency 64; client = this process, loop = the gateway's "
        "event-loop thread):",
        "",
        "| scenario | client | gateway (all threads) | gateway loop | upstream | req/s "
        "| other processes on the machine (CPUs busy) |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("json", "stream"):
        c64 = r[mode]["c64"]
        for way in ("direct", "gateway"):
            c = c64[way]["cpu_per_request"]
            lines.append(
                f"| {mode} {way} | {c['client_cpu_ms']} | {c['gateway_cpu_ms']} "
                f"| {c['gateway_event_loop_thread_cpu_ms']} | {c['upstream_cpu_ms']} "
                f"| {c64[way]['rps']} | {c['other_processes_cpus']} |"
            )
    rss = r["gateway_rss_mb"]
    c1_others = [r[m]["c1"]["cpu_per_pair"]["other_processes_cpus"] for m in ("json", "stream")]
    lines += [
        "",
        f"Concurrency 1, per direct+gateway pair: gateway CPU "
        f"{r['json']['c1']['cpu_per_pair']['gateway_cpu_ms']} ms (JSON), "
        f"{r['stream']['c1']['cpu_per_pair']['gateway_cpu_ms']} ms (stream); other processes "
        f"kept {c1_others[0]} / {c1_others[1]} CPUs busy. Load average before the run: "
        f"{r['machine']['load_average_before']}.",
        "",
        f"Gateway RSS: {rss['before']} MB before traffic, {rss['peak']} MB peak, "
        f"{rss['after']} MB after. Upstream answered {r['upstream_served']}.",
    ]
    if "profile" in r:
        lines += ["", *_profile_markdown(r["profile"])]
    return (
        f"# Gateway overhead benchmark\n\n{r['date']} · pluggably {r['pluggably']} "
        f"(commit {commit}) · "
        f"{m['cpus']} CPUs ({m['cpu_model']}) · Python {m['python']} · {m['platform']}\n\n"
        f"Command: `{r['command']}` ({r['elapsed_s']} s in all). Upstream: {up['description']}, "
        f"{up['reply_tokens']}-token reply, {up['latency_ms']} ms added latency; client: "
        "httpx.AsyncClient in the benchmark process; all three processes share the CPUs. "
        "Times in ms; added = gateway - direct at the same percentile; TTFT = first text "
        "delta.\n\n" + "\n".join(lines) + "\n"
    )


def _littles_law(r: dict[str, Any]) -> str:
    """In a closed loop, mean latency = concurrency / throughput, and p99 >= mean."""
    c = r["options"]["concurrency"]
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
