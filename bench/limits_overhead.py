"""Limits at concurrency 1 (issue #19): what a limit set on the caller adds to a
generation's latency. Two gateways of this checkout at once (real `pluggably serve`
processes) on one upstream, with bench/overhead.py's fast upstream, bodies and checks,
called in interleaved rounds like bench/ab_overhead.py (direct, A, B, rotating who goes
first), so both gateways see the same machine at the same moments:

  A  no limits: the admin key's user has none, and the server default (settings.limits)
     never applies to admins;
  B  limits on that same user (PUT /v1/users/{id}/limits) that apply to every call but
     never refuse one: rpm, tpm and max_concurrent very large, a large budget_usd per
     month, and the allow-list ["openai:*"], which the benchmarked model matches.

The admin key calls both. Before the rounds, one JSON and one stream call to each gateway
check that B's answers carry x-ratelimit-limit-requests (the limits really apply) and A's
do not; after them, B's remaining-requests must have gone down (its counters counted).
Each round is one stream and one JSON call per target (TTFT = request sent -> first SSE
frame with text; whole = the stream read to [DONE]; JSON = the answer read), after 50
warm-up rounds. Times in ms. Also the gateways' CPU per round (one stream and one JSON
call), and how many CPUs other processes kept busy (the machine's busy CPU time minus
ours), since other work on the machine adds noise that the interleaving spreads evenly.

Run:  .venv/bin/python bench/limits_overhead.py [--rounds 2000] [--runs 3]
      [--database sqlite|postgresql] [--out bench/results] [--src PATH] [--control]
--wait-quiet S: before each run, wait (at most S seconds) until other work leaves the
CPUs nearly idle, for a machine that others share; what other processes still took during
the rounds is in the results either way.
--control: an A/A run, B without limits too: what the setup measures between two
identical gateways (its bias and noise), to read the A/B numbers against.
--src: both gateways run that src folder instead of this checkout's (a git worktree of a
commit: `git worktree add /tmp/at HEAD`, then --src /tmp/at/src), so edits in progress in
this checkout cannot change a run; the results name that tree's commit.
--database postgresql: both gateways on PostgreSQL, each on a fresh database (dropped
afterwards) of the server in $PLUGGABLY_TEST_POSTGRES_URL; there the limit counters are
shared tables (one transaction per admission), so expect more cost than SQLite's
in-process counters. Each run starts fresh gateways (and databases) on a fresh upstream.
limits-overhead.json keeps one section per database (a run replaces its own);
limits-overhead.md shows every section (and keeps a hand-written block between
<!-- notes --> and <!-- /notes --> from the last one). Goal: B - A at p50 within 0.2 ms
for TTFT, the whole stream and JSON, in every run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import overhead as ov

RESULTS = Path(__file__).parent / "results"
PG_ENV = "PLUGGABLY_TEST_POSTGRES_URL"
GOAL_MS = 0.2
WARMUP_ROUNDS = 50
LIMITS: dict[str, Any] = {
    "rpm": 100_000_000,
    "tpm": 1_000_000_000,
    "max_concurrent": 100_000,
    "budget_usd": 1_000_000.0,
    "budget_period": "month",
    "models": ["openai:*"],
}
A, B = "A (no limits)", "B (limits)"
WAYS = ("direct", A, B)
METRICS = ("ttft", "whole", "json")
LABELS = {"ttft": "TTFT", "whole": "whole stream", "json": "JSON"}


class Gateway(ov.Gateway):
    """bench/overhead.py's gateway, on the database given (None: SQLite in its data dir)."""

    def __init__(
        self, upstream_url: str, tmp: Path, database_url: str | None, src: Path | None
    ) -> None:
        self.database_url = database_url or f"sqlite+aiosqlite:///{tmp / 'data/pluggably.db'}"
        extra = {"PLUGGABLY_DATABASE_URL": database_url} if database_url else {}
        if src is not None:  # before the venv's editable path to this checkout's src
            extra["PYTHONPATH"] = str(src)
        super().__init__(upstream_url, tmp, extra)


# -- PostgreSQL databases ------------------------------------------------------------------
def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _create_database(base: str) -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"pluggably_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_pg(base))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return base.rsplit("/", 1)[0] + "/" + name


async def _drop_database(url: str) -> None:
    import asyncpg

    base, name = url.rsplit("/", 1)
    admin = await asyncpg.connect(_pg(base + "/postgres"))
    try:
        for attempt in range(20):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)
    finally:
        await admin.close()


async def _pg_server(base: str) -> dict[str, Any]:
    """Which PostgreSQL, and how it commits (every admission is a commit)."""
    import asyncpg

    conn = await asyncpg.connect(_pg(base))
    try:
        version = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    where = base.rsplit("@", 1)[-1]  # no credentials in the results
    return {"server": f"PostgreSQL {version} at {where}", "synchronous_commit": sync}


# -- limits on B's caller ------------------------------------------------------------------
async def _set_limits(client: httpx.AsyncClient) -> str:
    """Sets LIMITS on the admin key's user; says how."""
    me = await client.get("/v1/users/me")
    assert me.status_code == 200, me.text
    user_id = me.json()["id"]
    put = await client.put(f"/v1/users/{user_id}/limits", json=LIMITS)
    assert put.status_code == 200, put.text
    assert put.json() == LIMITS, put.text
    return "set with PUT /v1/users/{id}/limits (200, the limits echoed back)"


async def _rate_headers(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """The x-ratelimit-* headers of one JSON and one stream answer."""
    found: dict[str, dict[str, str]] = {}
    answer = await client.post("/v1/generate", json=ov._gateway_body(False))
    assert answer.status_code == 200, answer.text
    found["json"] = {k: v for k, v in answer.headers.items() if k.startswith("x-ratelimit-")}
    async with client.stream("POST", "/v1/generate", json=ov._gateway_body(True)) as stream:
        assert stream.status_code == 200, await stream.aread()
        await stream.aread()
        found["stream"] = {k: v for k, v in stream.headers.items() if k.startswith("x-ratelimit-")}
    return found


def _check_headers(before: dict[str, dict[str, dict[str, str]]], control: bool) -> None:
    for mode in ("json", "stream"):
        assert before[A][mode] == {}, f"A's {mode} answer has {before[A][mode]}"
        if control:
            assert before[B][mode] == {}, f"B's {mode} answer has {before[B][mode]}"
        else:
            assert "x-ratelimit-limit-requests" in before[B][mode], f"B's {mode}: {before[B]}"


def _counted(before: dict[str, str], after: dict[str, str]) -> bool:
    """B's remaining requests went down over the rounds (when a minute did not roll over,
    by about the calls made; it only has to go down once across the checks)."""
    return int(after["x-ratelimit-remaining-requests"]) < int(
        before["x-ratelimit-remaining-requests"]
    )


# -- the rounds ----------------------------------------------------------------------------
class Cpu:
    """CPU seconds of our processes (each gateway's PostgreSQL backends under its own
    name too), and the machine's busy CPU time, over a window."""

    def __init__(self, procs: dict[str, list[psutil.Process]]) -> None:
        self.procs = procs

    def read(self) -> dict[str, float]:
        out = {}
        for name, procs in self.procs.items():
            out[name] = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):  # a backend that went away
                    t = proc.cpu_times()
                    out[name] += t.user + t.system
        t = psutil.cpu_times()
        out["machine"] = t.user + t.nice + t.system + t.irq + t.softirq + t.steal
        out["wall"] = time.perf_counter()
        return out

    def usage(self, before: dict[str, float], after: dict[str, float], rounds: int) -> Any:
        spent = {k: after[k] - before[k] for k in after}
        ours = sum(spent[name] for name in self.procs)
        per_round = {
            name: round(spent[name] / rounds * 1000, 3)
            for name in self.procs
            if name in (A, B) or name.endswith(PG_BACKENDS)
        }
        return {
            "cpu_ms_per_round": per_round,
            "other_processes_cpus": round(max(spent["machine"] - ours, 0) / spent["wall"], 2),
        }


PG_BACKENDS = " PostgreSQL backends"


async def _backends(database_url: str) -> list[psutil.Process]:
    """The server processes serving one database (the gateway's pooled connections)."""
    import asyncpg

    base, name = database_url.rsplit("/", 1)
    conn = await asyncpg.connect(_pg(base + "/postgres"))
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await conn.close()
    return [psutil.Process(row["pid"]) for row in rows]


async def _rounds(
    calls: dict[str, tuple[Callable[[], Awaitable[ov.Sample]], ...]], first: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds, rotating who goes first (round ``first`` onwards)."""
    samples: dict[str, dict[str, list[float]]] = {way: {m: [] for m in METRICS} for way in WAYS}
    for i in range(first, first + rounds):
        k = i % len(WAYS)
        order = WAYS[k:] + WAYS[:k]
        for way in order:
            elapsed, ttft = await calls[way][0]()
            samples[way]["whole"].append(elapsed)
            if ttft is not None:
                samples[way]["ttft"].append(ttft)
        for way in order:
            samples[way]["json"].append((await calls[way][1]())[0])
    return samples


def _calls(
    direct: httpx.AsyncClient, clients: dict[str, httpx.AsyncClient]
) -> dict[str, tuple[Callable[[], Awaitable[ov.Sample]], ...]]:
    def gateway(client: httpx.AsyncClient) -> tuple[Callable[[], Awaitable[ov.Sample]], ...]:
        return (
            lambda: ov._stream_call(client, "/v1/generate", ov._gateway_body(True)),
            lambda: ov._json_call(client, "/v1/generate", ov._gateway_body(False)),
        )

    return {
        "direct": (
            lambda: ov._stream_call(direct, "/chat/completions", ov._direct_body(True)),
            lambda: ov._json_call(direct, "/chat/completions", ov._direct_body(False)),
        ),
        A: gateway(clients[A]),
        B: gateway(clients[B]),
    }


def _stats(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    table = {
        way: {
            m: {p: ov._pct(values, q) for p, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
            | {"n": len(values)}
            for m, values in by_metric.items()
        }
        for way, by_metric in samples.items()
    }
    diff = {
        m: {p: round(table[B][m][p] - table[A][m][p], 3) for p in ("p50", "p90", "p99")}
        for m in METRICS
    }
    return {"ms": table, "b_minus_a_ms": diff}


async def _one_run(database: str, rounds: int, src: Path | None, control: bool) -> dict[str, Any]:
    """Fresh upstream, gateways (and databases), the checks, the rounds."""
    upstream = ov.Upstream("fast", 0)
    tmp = Path(tempfile.mkdtemp())
    gateways: dict[str, Gateway] = {}
    databases: list[str] = []
    try:
        for name in (A, B):
            url = None
            if database == "postgresql":
                url = await _create_database(os.environ[PG_ENV])
                databases.append(url)
            (tmp / name).mkdir()
            gateways[name] = Gateway(upstream.base_url, tmp / name, url, src)
        return await _measure(upstream, gateways, rounds, control)
    finally:
        for gateway in gateways.values():
            gateway.close()
        upstream.close()
        for url in databases:
            await _drop_database(url)


async def _processes(
    upstream: ov.Upstream, gateways: dict[str, Gateway]
) -> dict[str, list[psutil.Process]]:
    procs = {name: [g.ps] for name, g in gateways.items()}
    for name, g in gateways.items():
        if g.database_url.startswith("postgresql"):
            procs[name + PG_BACKENDS] = await _backends(g.database_url)
    return procs | {"upstream": [psutil.Process(upstream.proc.pid)], "bench": [psutil.Process()]}


async def _measure(
    upstream: ov.Upstream, gateways: dict[str, Gateway], rounds: int, control: bool
) -> dict[str, Any]:
    direct = httpx.AsyncClient(
        base_url=upstream.base_url, headers={"Authorization": f"Bearer {ov.API_KEY}"}
    )
    clients = {
        name: httpx.AsyncClient(base_url=g.base, headers={"X-API-Key": ov.ADMIN_KEY})
        for name, g in gateways.items()
    }
    try:
        how = CONTROL if control else await _set_limits(clients[B])
        before = {name: await _rate_headers(client) for name, client in clients.items()}
        _check_headers(before, control)
        calls = _calls(direct, clients)
        await _rounds(calls, 0, WARMUP_ROUNDS)  # not kept
        cpu = Cpu(await _processes(upstream, gateways))
        began = cpu.read()
        samples = await _rounds(calls, WARMUP_ROUNDS, rounds)
        used = cpu.usage(began, cpu.read(), rounds)
        after = await _rate_headers(clients[B])
    finally:
        for client in (direct, *clients.values()):
            await client.aclose()
    counted = None if control else _counted(before[B]["json"], after["json"])
    return _stats(samples) | {
        "cpu": used,
        "limits_set_via": how,
        "rate_headers": {A: before[A], B: before[B], f"{B} after the rounds": after},
        "b_counted": counted,
    }


# -- results -------------------------------------------------------------------------------
def _git(src: Path | None) -> dict[str, Any]:
    """The commit the gateways ran from, and whether their sources differed from it."""
    tree = src.resolve().parent if src else ov.ROOT

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=tree, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "tree": str(tree),
        "commit": git("rev-parse", "HEAD") or None,
        "src_dirty": bool(git("status", "--porcelain", "src")),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    p50 = {m: [run["b_minus_a_ms"][m]["p50"] for run in runs] for m in METRICS}
    return {
        "b_minus_a_p50_ms": p50,
        "range_ms": {m: [min(v), max(v)] for m, v in p50.items()},
        "goal_ms": GOAL_MS,
        "pass": all(abs(v) <= GOAL_MS for values in p50.values() for v in values),
    }


def _section(args: argparse.Namespace, runs: list[dict[str, Any]], meta: dict[str, Any]) -> Any:
    from pluggably import __version__

    git = _git(args.src)
    return {
        "date": meta["date"],
        "command": shlex.join([".venv/bin/python", "bench/limits_overhead.py", *sys.argv[1:]]),
        "pluggably": __version__,
        "git": meta["git"] | {"changed_during_run": git != meta["git"]},
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": ov._cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": meta["load"],
        },
        "options": {
            "rounds": args.rounds,
            "runs": args.runs,
            "warmup_rounds": WARMUP_ROUNDS,
            "control": args.control,
        },
        "limits": None if args.control else LIMITS,
        "postgresql": meta.get("postgresql"),
        "runs": runs,
        "summary": _summary(runs),
        "elapsed_s": round(time.perf_counter() - meta["began"], 1),
    }


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _run_rows(section: dict[str, Any]) -> list[str]:
    pg = any(A + PG_BACKENDS in run["cpu"]["cpu_ms_per_round"] for run in section["runs"])
    lines = [
        "| run | B - A TTFT p50 | B - A whole p50 | B - A JSON p50 | B - A TTFT p99 "
        "| B - A whole p99 | B - A JSON p99 | gateway CPU ms per round A / B "
        + ("| its PostgreSQL backends' CPU ms per round A / B " if pg else "")
        + "| other processes' CPUs |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if pg else "") + "---|",
    ]
    for i, run in enumerate(section["runs"], 1):
        d, cpu = run["b_minus_a_ms"], run["cpu"]
        cells = [_signed(d[m]["p50"]) for m in METRICS] + [_signed(d[m]["p99"]) for m in METRICS]
        per_round = cpu["cpu_ms_per_round"]
        cells.append(f"{per_round[A]} / {per_round[B]}")
        if pg:
            cells.append(f"{per_round[A + PG_BACKENDS]} / {per_round[B + PG_BACKENDS]}")
        cells.append(str(cpu["other_processes_cpus"]))
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    return lines


def _latency_rows(section: dict[str, Any]) -> list[str]:
    head = " | ".join(f"{LABELS[m]} {p}" for m in METRICS for p in ("p50", "p90", "p99"))
    lines = [f"| run | target | {head} |", "|---|---|" + "---|" * 9]
    shown = {B: "B (control: no limits)"} if section["options"]["control"] else {}
    for i, run in enumerate(section["runs"], 1):
        for way in WAYS:
            s = run["ms"][way]
            cells = [f"{s[m][p]:.3f}" for m in METRICS for p in ("p50", "p90", "p99")]
            lines.append(f"| {i} | {shown.get(way, way)} | " + " | ".join(cells) + " |")
    return lines


def _checks(section: dict[str, Any]) -> str:
    first = section["runs"][0]
    if first["limits_set_via"] == CONTROL:
        return (
            "Control run (--control): B has no limits either, so B - A shows what this "
            "setup measures between two identical gateways (its bias and noise). Checked in "
            "every run before the rounds: neither gateway's JSON or stream answer carries an "
            "x-ratelimit-* header."
        )
    headers = first["rate_headers"]
    b_json, after = headers[B]["json"], headers[f"{B} after the rounds"]["json"]
    went_down = all(run["b_counted"] for run in section["runs"])
    return (
        f"Limits on B's caller (the admin key's user): `{json.dumps(section['limits'])}`, "
        f"{first['limits_set_via']}. Checked in every run before the rounds: A's JSON and "
        "stream answers carry no x-ratelimit-* header; B's both carry "
        "x-ratelimit-limit-requests (run 1, JSON: "
        + ", ".join(f"`{k}: {v}`" for k, v in b_json.items())
        + f"). B's remaining requests after run 1's rounds: "
        f"{after.get('x-ratelimit-remaining-requests')}"
        + (" (went down in every run: the counters counted)." if went_down else ".")
    )


TITLES = {"sqlite": "SQLite (the default)", "postgresql": "PostgreSQL"}
CONTROL = "none: a control run (A/A), B has no limits either"
CONTROL_KEY = " control"


def _sections() -> dict[str, str]:
    """Section keys in limits-overhead.json, in the order the markdown shows them."""
    out = {}
    for key, title in TITLES.items():
        out[key] = title
        out[key + CONTROL_KEY] = f"{title}: control, A/A (neither gateway has limits)"
    return out


INTRO = (
    "# Limits overhead at concurrency 1 (issue #19)\n\n"
    "Goal: with a limit set on the caller, concurrency-1 added latency within "
    f"{GOAL_MS} ms of the same run without one, at p50, for TTFT, the whole stream and "
    "JSON. Two gateways of the same checkout run at once (real `pluggably serve` "
    "processes) over one fast upstream (bench/overhead.py's), called in interleaved rounds "
    "(direct, A, B, rotating who goes first; 50 warm-up rounds not kept): A has no limits, "
    "B has limits on the caller that apply to every call but never refuse one. Each run "
    "starts fresh gateways (and databases). Times in ms; B - A is the difference of the "
    "two gateways' percentiles in the same run. Gateway CPU per round = one stream and one "
    "JSON call. Other processes' CPUs = the machine's busy CPU time minus the gateways', "
    "upstream's and benchmark's, over the rounds: other work that shared the 2 CPUs (noise "
    "the interleaving spreads over A and B alike).\n"
)


def _section_markdown(title: str, s: dict[str, Any]) -> list[str]:
    m, g, summary = s["machine"], s["git"], s["summary"]
    commit = (g["commit"] or "?")[:10] + (", src modified" if g["src_dirty"] else "")
    if g.get("changed_during_run"):
        commit += "; the checkout changed during the run"
    ranges = ", ".join(
        f"{LABELS[k]} {_signed(lo)} to {_signed(hi)} ms"
        for k, (lo, hi) in summary["range_ms"].items()
    )
    verdict = "PASS" if summary["pass"] else "FAIL"
    return [
        f"## {title}",
        "",
        f"{s['date']} · pluggably {s['pluggably']} (commit {commit}) · {m['cpus']} CPUs "
        f"({m['cpu_model']}) · Python {m['python']} · {m['platform']} · load average before "
        f"{m['load_average_before']}",
        "",
        f"Command: `{s['command']}` ({s['elapsed_s']} s in all; {s['options']['rounds']} "
        f"rounds per run, {s['options']['runs']} runs)."
        + (
            f" {pg['server']} (synchronous_commit {pg['synchronous_commit']}), "
            f"from ${PG_ENV}; a fresh database per gateway in every run."
            if (pg := s.get("postgresql"))
            else ""
        ),
        "",
        _checks(s),
        "",
        *_run_rows(s),
        "",
        f"B - A at p50 over the runs: {ranges}. "
        + (
            "(A control: no goal.)"
            if s["options"]["control"]
            else f"Goal (|B - A| ≤ {GOAL_MS} ms at p50, every metric, every run): {verdict}."
        ),
        "",
        "Every target, every run:",
        "",
        *_latency_rows(s),
        "",
    ]


NOTES = ("<!-- notes -->", "<!-- /notes -->")


def _notes(md: Path) -> list[str]:
    """A hand-written block between the NOTES markers in the last markdown is kept."""
    text = md.read_text() if md.exists() else ""
    begin, end = text.find(NOTES[0]), text.find(NOTES[1])
    return [text[begin : end + len(NOTES[1])], ""] if 0 <= begin < end else []


def _write(out: Path, key: str, section: dict[str, Any]) -> str:
    path = out / "limits-overhead.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results = {"benchmark": "limits_overhead", "goal_ms": GOAL_MS} | results
    results[key] = section
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    lines = [INTRO, *_notes(out / "limits-overhead.md")]
    for name, title in _sections().items():
        if name in results:
            lines += _section_markdown(title, results[name])
    md = "\n".join(lines)
    (out / "limits-overhead.md").write_text(md)
    return md


def _wait_quiet(at_most_s: float) -> float:
    """Waits until other work leaves the CPUs nearly idle (under 10 % busy over 3 s), at
    most ``at_most_s``; returns how long it waited."""
    began = time.perf_counter()
    while time.perf_counter() - began < at_most_s:
        if psutil.cpu_percent(interval=3) < 10:
            break
    return round(time.perf_counter() - began, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", choices=tuple(TITLES), default="sqlite")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="before each run, wait at most S seconds for the CPUs to be nearly idle",
    )
    parser.add_argument(
        "--control", action="store_true", help="A/A: B without limits too (the setup's noise)"
    )
    parser.add_argument(
        "--src",
        type=Path,
        help="run both gateways from this src folder (e.g. of a git worktree at a commit, "
        "so that edits in progress in this checkout do not change the run)",
    )
    args = parser.parse_args()
    if args.database == "postgresql" and not os.environ.get(PG_ENV):
        parser.error(f"--database postgresql needs {PG_ENV} (postgresql+asyncpg://…/postgres)")
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": _git(args.src),
        "load": [round(x, 2) for x in os.getloadavg()],
        "began": time.perf_counter(),
    }
    if args.database == "postgresql":
        meta["postgresql"] = asyncio.run(_pg_server(os.environ[PG_ENV]))
    runs = []
    for i in range(args.runs):
        waited = _wait_quiet(args.wait_quiet) if args.wait_quiet else None
        runs.append(asyncio.run(_one_run(args.database, args.rounds, args.src, args.control)))
        runs[-1]["waited_for_quiet_s"] = waited
        d = runs[-1]["b_minus_a_ms"]
        shown = ", ".join(f"{LABELS[m]} {_signed(d[m]['p50'])}" for m in METRICS)
        print(f"run {i + 1}: B - A at p50 {shown} ms", file=sys.stderr, flush=True)
    key = args.database + (CONTROL_KEY if args.control else "")
    print(_write(args.out, key, _section(args, runs, meta)))


if __name__ == "__main__":
    main()
