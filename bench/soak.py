"""Soak: `--concurrency` closed-loop clients streaming `POST /v1/generate` through a real
`pluggably serve` for `--seconds`, watching the gateway's memory and file descriptors.

Run:  .venv/bin/python bench/soak.py [--concurrency 200] [--seconds 60] [--warmup-s 10]

Processes, as in bench/overhead.py (whose Upstream and Gateway this reuses): the raw-asyncio
upstream (overhead.py --upstream-worker: /v1/chat/completions as chunked SSE, a fixed
20-token reply, no delay), the real gateway (SQLite, admin key, server-side OpenAI key, its
openai provider pointed at the upstream) and this process as the client, one
httpx.AsyncClient (one keep-alive connection) per worker. All share the machine's CPUs.

Every stream is read to `[DONE]` and checked: HTTP 200, `model_selected` first, the text
deltas add up to the reply, `complete` last, no `error` frame. Anything else counts as an
error by kind (http_<status>, error_frame:<code>, no_done, frames, text_mismatch,
transport:<exception>).

Phases: warm-up (`--warmup-s` at full concurrency), settle, the measured phase (sampling
the gateway's RSS, open fds, threads and TCP connections every second), settle. Settling
makes the idle state comparable: every worker's client is closed, the gateway's idle
upstream keep-alive connections are left to expire (4 s in providers/upstream.py), then 32
sequential probe streams pass through the gateway, which leaves one upstream connection
open; the probe client is closed and the gateway's client-side connections drain. The leak
checks compare the settled state after the load with the one before it.

Checks: zero errors in every phase; RSS growth < 10 % (settled before → settled after, and
the median of the first 5 vs the last 5 samples under load); settled fds after ≤ before + 5;
the in-flight gauge back to 1 (the /metrics request itself); every request record in the
database `completed`, as many as streams sent, and as many streams as the upstream served;
the gateway exits 0 with no error lines in its log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from overhead import ADMIN_KEY, MODEL, REPLY, Gateway, Upstream, _cpu_model, _git

BODY = {"model": f"openai:{MODEL}", "input": {"prompt": "hello"}, "stream": True}
HEADERS = {"X-API-Key": ADMIN_KEY}
LIMITS = httpx.Limits(max_connections=1, max_keepalive_connections=1)
UPSTREAM_POOLS = 16  # the gateway's ShardedClient (container.py)
KEEPALIVE_EXPIRY_S = 5.0  # httpx's default, kept by the gateway's upstream client
FD_SLACK = 5
RSS_GROWTH_MAX = 0.10
IN_FLIGHT = "pluggably_http_requests_in_flight"


class StreamError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def one_stream(client: httpx.AsyncClient) -> tuple[float, float]:
    """One checked stream: (latency ms to [DONE], ms to the first text delta)."""
    start = time.perf_counter()
    ttft: float | None = None
    parts: list[str] = []
    events: list[str] = []
    done = False
    async with client.stream("POST", "/v1/generate", json=BODY) as response:
        if response.status_code != 200:
            await response.aread()
            raise StreamError(f"http_{response.status_code}")
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue  # blank separators, keep-alive comments
            if done:
                raise StreamError("data_after_done")
            if line == "data: [DONE]":
                done = True
                continue
            frame = json.loads(line[6:])
            if "choices" in frame:
                content = frame["choices"][0]["delta"].get("content")
                if content:
                    ttft = ttft or (time.perf_counter() - start) * 1000
                    parts.append(content)
            elif frame.get("event") == "error":
                raise StreamError(f"error_frame:{frame.get('code')}")
            else:
                events.append(str(frame.get("event")))
    if not done:
        raise StreamError("no_done")
    if events[:1] != ["model_selected"] or events[-1:] != ["complete"]:
        raise StreamError("frames")
    if "".join(parts) != REPLY or ttft is None:
        raise StreamError("text_mismatch")
    return (time.perf_counter() - start) * 1000, ttft


@dataclass
class Tally:
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latency_ms)

    @property
    def sent(self) -> int:
        return self.completed + self.errors.total()

    async def run(self, client: httpx.AsyncClient) -> None:
        try:
            latency, ttft = await one_stream(client)
        except StreamError as exc:
            self.errors[exc.kind] += 1
        except httpx.HTTPError as exc:
            self.errors[f"transport:{type(exc).__name__}"] += 1
        except (ValueError, LookupError, TypeError):
            self.errors["bad_frame"] += 1  # not JSON, or not the frame shapes of API.md
        else:
            self.latency_ms.append(latency)
            self.ttft_ms.append(ttft)
            return
        await asyncio.sleep(0.1)  # no hot loop against a broken gateway

    def summary(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "errors": dict(self.errors),
            "seconds": round(self.wall_s, 2),
            "rps": round(self.completed / self.wall_s, 1) if self.wall_s else None,
            "latency_p50_ms": _pct(self.latency_ms, 0.5),
            "latency_p99_ms": _pct(self.latency_ms, 0.99),
            "latency_max_ms": round(max(self.latency_ms), 1) if self.latency_ms else None,
            "ttft_p50_ms": _pct(self.ttft_ms, 0.5),
            "ttft_p99_ms": _pct(self.ttft_ms, 0.99),
        }


class Watch:
    """The gateway process (and the machine's TCP table) as /proc shows them; CPU of the
    three processes between samples."""

    def __init__(self, gw: Gateway, upstream: Upstream) -> None:
        self.ps = gw.ps
        self.port = int(gw.base.rsplit(":", 1)[1])
        self.upstream_port = int(upstream.base_url.split(":")[2].split("/")[0])
        self.procs = {
            "gateway": gw.ps,
            "upstream": psutil.Process(upstream.proc.pid),
            "client": psutil.Process(),
        }
        self.cpu_mark = self._cpu()

    def _cpu(self) -> dict[str, Any]:
        out: dict[str, Any] = {"wall": time.perf_counter()}
        for name, proc in self.procs.items():
            t = proc.cpu_times()
            out[name] = (t.user, t.system)
        m = psutil.cpu_times()  # the whole machine, to see what other processes took
        out["machine"] = m.user + m.nice + m.system + m.irq + m.softirq + m.steal
        return out

    def cpu_since_last(self) -> dict[str, float]:
        """Per cent of one CPU each process used since the last call."""
        now, last = self._cpu(), self.cpu_mark
        self.cpu_mark = now
        wall = now["wall"] - last["wall"]
        out = {}
        for name in self.procs:
            user, system = (now[name][i] - last[name][i] for i in (0, 1))
            out[f"{name}_cpu_pct"] = round((user + system) / wall * 100, 1)
        out["gateway_sys_pct"] = round((now["gateway"][1] - last["gateway"][1]) / wall * 100, 1)
        ours = sum(sum(now[n]) - sum(last[n]) for n in self.procs)
        out["others_cpu_pct"] = round((now["machine"] - last["machine"] - ours) / wall * 100, 1)
        return out

    def snapshot(self) -> dict[str, Any]:
        """RSS, fds, threads; the gateway's TCP sockets by peer (/proc/net/tcp*, as psutil
        reads them) and the machine's TIME_WAIT sockets toward the upstream's port."""
        began = time.perf_counter()
        inodes = set()
        fds = 0
        for fd in os.listdir(f"/proc/{self.ps.pid}/fd"):
            fds += 1
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{self.ps.pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
        # The kernel writes these tables in pieces: a socket can show twice while they
        # change (and TIME_WAIT sockets have no inode), hence sets of inodes, and a count.
        clients: set[int] = set()
        upstream: set[int] = set()
        close_wait: set[int] = set()
        time_wait = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                next(f)
                for line in f:
                    row = line.split()
                    local, remote, state = int(row[1][-4:], 16), int(row[2][-4:], 16), row[3]
                    if state == "06" and remote == self.upstream_port:
                        time_wait += 1
                    inode = int(row[9])
                    if inode not in inodes or state == "0A":  # not ours, or LISTEN
                        continue
                    if state == "08":
                        close_wait.add(inode)
                    if local == self.port:
                        clients.add(inode)
                    elif remote == self.upstream_port:
                        upstream.add(inode)
        return {
            "rss_mb": round(self.ps.memory_info().rss / 1e6, 1),
            "fds": fds,
            "threads": self.ps.num_threads(),
            "tcp_from_clients": len(clients),
            "tcp_to_upstream": len(upstream),
            "tcp_close_wait": len(close_wait),
            "time_wait_to_upstream": time_wait,
            "snapshot_ms": round((time.perf_counter() - began) * 1000, 1),
        }


async def load(
    gw: Gateway, concurrency: int, seconds: float, watch: Watch | None = None
) -> tuple[Tally, list[dict[str, Any]]]:
    """`concurrency` closed-loop workers for `seconds` (each finishes its last stream),
    sampling the gateway every second when `watch` is given; the clients are closed after."""
    tally = Tally()
    samples: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        # One client (one connection) per worker: a shared httpx pool scans all its
        # connections on every request, which makes the client the bottleneck.
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=gw.base, headers=HEADERS, limits=LIMITS, timeout=60)
            )
            for _ in range(concurrency)
        ]
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(client: httpx.AsyncClient) -> None:
            while time.perf_counter() < deadline:
                await tally.run(client)

        async def sample() -> None:
            assert watch is not None
            watch.cpu_since_last()
            for second in range(1, int(seconds) + 1):
                await asyncio.sleep(start + second - time.perf_counter())
                row = {"t_s": second, "completed": tally.completed, "errors": tally.errors.total()}
                row |= watch.cpu_since_last() | watch.snapshot()
                samples.append(row)

        sampler = asyncio.create_task(sample()) if watch else None
        await asyncio.gather(*(worker(c) for c in clients))
        tally.wall_s = time.perf_counter() - start
        if sampler:
            await sampler
    return tally, samples


async def settle(gw: Gateway, watch: Watch) -> tuple[dict[str, Any], Tally]:
    """The comparable idle state (see the module docstring)."""
    tally = Tally()
    await asyncio.sleep(KEEPALIVE_EXPIRY_S + 1)
    async with httpx.AsyncClient(base_url=gw.base, headers=HEADERS, timeout=30) as client:
        for _ in range(2 * UPSTREAM_POOLS):
            await tally.run(client)
    state = watch.snapshot()
    for _ in range(50):  # the gateway sees the probe client's connection close
        if state["tcp_from_clients"] == 0:
            break
        await asyncio.sleep(0.1)
        state = watch.snapshot()
    return state, tally


async def in_flight_gauge(gw: Gateway) -> float | None:
    async with httpx.AsyncClient(base_url=gw.base, headers=HEADERS, timeout=10) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(f"{IN_FLIGHT} "):
            return float(line.split()[1])
    return None


def _db_statuses(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


def _log_problems(text: str) -> list[str]:
    """Lines of the gateway's log (level warning and up) at error level or tracebacks."""
    bad = []
    for line in text.splitlines():
        try:
            level = json.loads(line).get("level")
        except (ValueError, AttributeError):
            level = "error" if "Traceback" in line or "Error" in line else None
        if level in ("error", "critical"):
            bad.append(line[:300])
    return bad


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    upstream = Upstream("fast", 0.0)
    try:
        gw = Gateway(upstream.base_url, tmp)
    except BaseException:
        upstream.close()
        raise
    watch = Watch(gw, upstream)
    out: dict[str, Any] = {"fresh": watch.snapshot()}
    phases: dict[str, Tally] = {}
    try:
        phases["warmup"], _ = await load(gw, args.concurrency, args.warmup_s)
        print(f"warm-up: {phases['warmup'].summary()}", file=sys.stderr, flush=True)
        out["settled_before"], phases["probe_before"] = await settle(gw, watch)
        phases["measured"], out["samples"] = await load(gw, args.concurrency, args.seconds, watch)
        print(f"measured: {phases['measured'].summary()}", file=sys.stderr, flush=True)
        out["settled_after"], phases["probe_after"] = await settle(gw, watch)
        out["in_flight_gauge_after"] = await in_flight_gauge(gw)
    finally:
        gw.close()
        upstream.close()
    out["gateway_exit_code"] = gw.proc.returncode
    out["gateway_log_problems"] = _log_problems(gw.log.read_text())
    out["db_request_statuses"] = _db_statuses(tmp / "data" / "pluggably.db")
    out["upstream_served"] = upstream.served
    out["phases"] = {name: t.summary() for name, t in phases.items()}
    out["streams_sent"] = sum(t.sent for t in phases.values())
    return out


def _growth(before: float, after: float) -> float:
    return round((after - before) / before * 100, 2)


def _analyse(out: dict[str, Any]) -> dict[str, Any]:
    samples, before, after = out["samples"], out["settled_before"], out["settled_after"]
    first = statistics.median(s["rss_mb"] for s in samples[:5])
    last = statistics.median(s["rss_mb"] for s in samples[-5:])
    rss = {
        "settled_before_mb": before["rss_mb"],
        "settled_after_mb": after["rss_mb"],
        "settled_growth_pct": _growth(before["rss_mb"], after["rss_mb"]),
        "load_first_5s_median_mb": first,
        "load_last_5s_median_mb": last,
        "load_growth_pct": _growth(first, last),
        "peak_mb": max(s["rss_mb"] for s in samples),
    }
    fds = {
        "settled_before": before["fds"],
        "settled_after": after["fds"],
        "load_first": samples[0]["fds"],
        "load_last": samples[-1]["fds"],
        "load_max": max(s["fds"] for s in samples),
    }
    errors: Counter[str] = Counter()
    for phase in out["phases"].values():
        errors.update(phase["errors"])
    statuses, sent = out["db_request_statuses"], out["streams_sent"]
    served = out["upstream_served"].get("stream", 0)
    checks = [
        ("zero errors (every phase)", dict(errors), not errors),
        (
            f"RSS growth < {RSS_GROWTH_MAX:.0%}, settled before → after",
            f"{rss['settled_growth_pct']} %",
            rss["settled_growth_pct"] < RSS_GROWTH_MAX * 100,
        ),
        (
            f"RSS growth < {RSS_GROWTH_MAX:.0%}, under load (first 5 s → last 5 s)",
            f"{rss['load_growth_pct']} %",
            rss["load_growth_pct"] < RSS_GROWTH_MAX * 100,
        ),
        (
            f"fds settled after ≤ before + {FD_SLACK}",
            f"{fds['settled_before']} → {fds['settled_after']}",
            fds["settled_after"] <= fds["settled_before"] + FD_SLACK,
        ),
        (
            "in-flight gauge back to 1 (the /metrics request itself)",
            out["in_flight_gauge_after"],
            out["in_flight_gauge_after"] == 1.0,
        ),
        (
            "request records: all completed, one per stream sent",
            f"{statuses} / {sent} sent",
            statuses == {"completed": sent},
        ),
        ("upstream served one stream per stream sent", f"{served} / {sent}", served == sent),
        (
            "gateway exit code 0, no error lines in its log",
            f"{out['gateway_exit_code']}, {len(out['gateway_log_problems'])} lines",
            out["gateway_exit_code"] == 0 and not out["gateway_log_problems"],
        ),
    ]
    # Not a check: whether the gateway keeps its upstream connections. Each one it closes
    # stays in TIME_WAIT for 60 s; loopback connects may reuse such a port, so their count
    # is a lower bound of the connections opened in the last minute.
    in_last_minute = samples[-1]["completed"] - (
        samples[-61]["completed"] if len(samples) > 60 else 0
    )
    upstream_tcp = {
        "kept_open_settled_before": before["tcp_to_upstream"],
        "kept_open_settled_after": after["tcp_to_upstream"],
        "time_wait_to_upstream_at_end": samples[-1]["time_wait_to_upstream"],
        "streams_in_the_last_minute_of_load": in_last_minute,
    }
    return {
        "rss": rss,
        "fds": fds,
        "upstream_tcp": upstream_tcp,
        "checks": [{"check": c, "value": v, "pass": bool(p)} for c, v, p in checks],
    }


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httpx", "httpcore", "psutil"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured phase")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.seconds < 10:
        parser.error("--seconds must be at least 10 (5 s of samples are compared at each end)")

    from pluggably import __version__

    began = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp_name:
        measured = asyncio.run(_run(args, Path(tmp_name)))
    result = {
        "benchmark": "soak",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/soak.py", *sys.argv[1:]]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
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
        "versions": _versions(),
        "upstream": "bench/overhead.py --upstream-worker: raw asyncio HTTP/1.1, chunked SSE, "
        "20-token reply, no added latency",
        **measured,
        **_analyse(measured),
        "others_cpu_pct_mean": round(
            statistics.mean(s["others_cpu_pct"] for s in measured["samples"]), 1
        ),
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    md = _markdown(result)
    (args.out / "soak.md").write_text(md)
    print(md)
    sys.exit(0 if all(c["pass"] for c in result["checks"]) else 1)


def _markdown(r: dict[str, Any]) -> str:
    m, p, rss, fds = r["machine"], r["phases"]["measured"], r["rss"], r["fds"]
    up = r["upstream_tcp"]
    commit = (r["git"]["commit"] or "?")[:10] + (", src modified" if r["git"]["src_dirty"] else "")
    errors = ", ".join(f"{k}: {v}" for k, v in p["errors"].items()) or "none"
    before, after = r["settled_before"], r["settled_after"]
    lines = [
        f"# Soak: {r['options']['concurrency']} concurrent streams for "
        f"{r['options']['seconds']:g} s",
        "",
        f"{r['date']} · pluggably {r['pluggably']} (commit {commit}) · {m['cpus']} CPUs "
        f"({m['cpu_model']}) · {m['memory_gb']} GiB · Python {m['python']} · {m['platform']} · "
        f"load average before {m['load_average_before']}",
        "",
        f"Command: `{r['command']}` ({r['elapsed_s']} s in all). Upstream: {r['upstream']}; "
        "the real `pluggably serve` (SQLite); client: this process, one httpx.AsyncClient per "
        "worker; all three share the CPUs. Every stream read to `[DONE]` and checked. "
        f"Other processes on the machine used {max(r['others_cpu_pct_mean'], 0)} % of a CPU on "
        "average during the measured phase.",
        "",
        "| measured phase | value |",
        "|---|---|",
        f"| streams completed | {p['completed']} in {p['seconds']} s |",
        f"| errors | {errors} |",
        f"| streams/s | {p['rps']} |",
        f"| latency p50 / p99 / max (ms, request → [DONE]) | {p['latency_p50_ms']} / "
        f"{p['latency_p99_ms']} / {p['latency_max_ms']} |",
        f"| first text delta p50 / p99 (ms) | {p['ttft_p50_ms']} / {p['ttft_p99_ms']} |",
        f"| RSS settled before → after (MB) | {rss['settled_before_mb']} → "
        f"{rss['settled_after_mb']} ({rss['settled_growth_pct']:+} %) |",
        f"| RSS under load, first 5 s → last 5 s, medians (MB) | "
        f"{rss['load_first_5s_median_mb']} → {rss['load_last_5s_median_mb']} "
        f"({rss['load_growth_pct']:+} %), peak {rss['peak_mb']} |",
        f"| open fds settled before → after | {fds['settled_before']} → {fds['settled_after']} |",
        f"| open fds under load first / last / max | {fds['load_first']} / {fds['load_last']} / "
        f"{fds['load_max']} |",
        f"| threads settled before → after | {before['threads']} → {after['threads']} |",
        f"| upstream connections settled before → after | {before['tcp_to_upstream']} → "
        f"{after['tcp_to_upstream']} |",
        "",
        "| check | value | result |",
        "|---|---|---|",
        *(
            f"| {c['check']} | {c['value']} | {'PASS' if c['pass'] else 'FAIL'} |"
            for c in r["checks"]
        ),
        "",
        "Every 10 s of the measured phase (connections: the gateway's TCP sockets):",
        "",
        "| t (s) | streams/s | RSS (MB) | fds | from clients | to upstream | TIME_WAIT to "
        "upstream | CLOSE_WAIT | threads | CPU % gateway (system) / client / upstream "
        "/ other processes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    samples = r["samples"]
    previous = {"t_s": 0, "completed": 0}
    for s in samples:
        if s["t_s"] % 10 and s is not samples[-1]:
            continue
        rate = (s["completed"] - previous["completed"]) / (s["t_s"] - previous["t_s"])
        lines.append(
            f"| {s['t_s']} | {rate:.0f} | {s['rss_mb']} | {s['fds']} | {s['tcp_from_clients']} "
            f"| {s['tcp_to_upstream']} | {s['time_wait_to_upstream']} | {s['tcp_close_wait']} "
            f"| {s['threads']} | {s['gateway_cpu_pct']:.0f} ({s['gateway_sys_pct']:.0f}) / "
            f"{s['client_cpu_pct']:.0f} / {s['upstream_cpu_pct']:.0f} "
            f"/ {max(s['others_cpu_pct'], 0):.0f} |"
        )
        previous = s
    phases = ", ".join(
        f"{name} {t['completed']} streams ({t['errors'] or 'no errors'})"
        for name, t in r["phases"].items()
    )
    lines += [
        "",
        f"Upstream connections kept open by the gateway in the settled states: "
        f"{up['kept_open_settled_before']} before, {up['kept_open_settled_after']} after "
        "(1: the probes' connection, reused by each of them). Sockets toward the "
        f"upstream in TIME_WAIT at the end of the load: {up['time_wait_to_upstream_at_end']}, "
        f"for {up['streams_in_the_last_minute_of_load']} streams in its last minute (a lower "
        "bound of the connections the gateway opened and closed: loopback connects may reuse "
        "a TIME_WAIT port).",
        "",
        f"Phases: {phases}. Settled state (see the script's docstring): idle keep-alive "
        "upstream connections expired, then 32 sequential probe streams, the probe client "
        "closed. Upstream answered "
        f"{r['upstream_served']}; request records {r['db_request_statuses']}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
