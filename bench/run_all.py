"""The benchmark suite: every bench with its normal command, then one summary.

Run:  make bench    (= .venv/bin/python bench/run_all.py)
      .venv/bin/python bench/run_all.py [--with-soak] [--with-login-load] [--with-rss]
      [--only NAMES]
      [--quick] [--out bench/results]

Parts, in this order, each a subprocess with its own defaults (see each file's docstring):
  overhead         bench/overhead.py: direct vs Pluggably vs LiteLLM's proxy (installed in
                   bench/.venv-litellm on first use), JSON and stream, driven by wrk at
                   concurrency 1, 4, 16, 64, 256 (needs wrk: apt-get install wrk)
  local_inference  bench/local_inference.py: tokens/s vs llama-cpp-python, queue and cancel
  downloads        bench/downloads.py: throughput vs huggingface_hub, /health during a download
  startup          bench/startup.py --runs 5: startup to ready, idle RSS
  limits_overhead  bench/limits_overhead.py --runs 3 (about 3 minutes): concurrency-1 latency
                   of a caller with limits that never refuse against one without (SQLite),
                   B - A at p50 within 0.2 ms; writes limits-overhead.json/.md
  soak             bench/soak.py (only with --with-soak): 200 streams for 60 s
  login_load       bench/login_load.py (only with --with-login-load): /health during logins
  rss              bench/rss.py (only with --with-rss, about 5 minutes): RSS over 1,000 local
                   and 10,000 remote generations, flat within ±30 MB after a warm-up
Each writes its own <name>.json/.md into --out; this script then reads those JSON files and
writes suite.json and suite.md there: the machine, the versions (Pluggably commit, Python,
LiteLLM), the exact command of each part and one table of every goal with its value and
PASS / FAIL (SKIP: not measured, e.g. LiteLLM unavailable). It exits 1 when a part left no
fresh results; missed goals do not change the exit code.

--quick passes short options to every part (a smoke test of the suite, minutes instead of
about twelve; its numbers are not results): use it with --out pointing elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from litellm_proxy import LITELLM_VERSION
from overhead import _cpu_model, _git, _versus_rows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(__file__).parent / "results"
# Parts whose results file is not named after the part.
RESULT_FILES = {"limits_overhead": "limits-overhead.json"}


SHORT_OVERHEAD = ["--requests-c1", "30", "--concurrency", "1,64", "--seconds", "2"]
# name: (normal arguments, --quick arguments, optional)
PARTS: dict[str, tuple[list[str], list[str], bool]] = {
    "overhead": (
        [],
        [*SHORT_OVERHEAD, "--warmup-s", "1", "--max-run-s", "4", "--profile", "never"],
        False,
    ),
    "local_inference": ([], ["--runs", "1", "--max-tokens", "32"], False),
    "downloads": (
        [],
        ["--size-mb", "32", "--runs", "1", "--health-s", "0.5", "--max-mb", "128"],
        False,
    ),
    "startup": (["--runs", "5"], ["--runs", "1"], False),
    "limits_overhead": (["--runs", "3"], ["--rounds", "100", "--runs", "1"], False),
    "soak": ([], ["--concurrency", "20", "--seconds", "10", "--warmup-s", "2"], True),
    "login_load": ([], ["--concurrency", "5", "--rounds", "1"], True),
    "rss": (
        [],
        ["--local", "40", "--remote", "400", "--warmup-local", "10", "--warmup-remote", "100"],
        True,
    ),
}


def _rel(path: str | Path) -> str:
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def _command(name: str, args: argparse.Namespace) -> list[str]:
    normal, quick, _ = PARTS[name]
    argv = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *(quick if args.quick else normal)]
    if args.out.resolve() != DEFAULT_OUT.resolve():
        argv += ["--out", str(args.out)]
    return argv


def _run_part(name: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = _command(name, args)
    shown = shlex.join([_rel(a) for a in argv[:2]] + argv[2:])
    print(f"\n=== {name}: {shown}", file=sys.stderr, flush=True)
    result_file = args.out / RESULT_FILES.get(name, f"{name}.json")
    began_wall, began = time.time(), time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT)
    part: dict[str, Any] = {
        "command": shown,
        "exit_code": done.returncode,
        "seconds": round(time.perf_counter() - began, 1),
        "results": _rel(result_file),
    }
    fresh = result_file.exists() and result_file.stat().st_mtime >= began_wall
    if not fresh:
        part["error"] = f"no fresh {result_file.name} (exit code {done.returncode})"
        return part
    part["data"] = json.loads(result_file.read_text())
    return part


# -- goals of each bench, from its own JSON ---------------------------------------------
def _rows(name: str, r: dict[str, Any]) -> list[dict[str, Any]]:
    """Goal rows {goal, value, pass (None = not measured), note} of one bench's results."""
    if name in ("overhead", "local_inference"):
        return [
            {
                "goal": g["goal"] + (f" [issue {g['issue']}]" if g.get("issue") else ""),
                "value": g["value"],
                "pass": g["pass"],
                "note": g.get("note", ""),
            }
            for g in r["goals"]
        ]
    if name == "soak":
        return [{"goal": c["check"], "value": c["value"], "pass": c["pass"]} for c in r["checks"]]
    if name == "startup":
        goal = r["goal"]
        return [
            {
                "goal": f"{start} start: ready < {goal['ready_s']} s (max)",
                "value": r[start]["ready_s_max"],
                "pass": r[start]["ready_s_max"] < goal["ready_s"],
            }
            for start in ("cold", "warm")
        ] + [
            {
                "goal": f"{start} start: idle RSS < {goal['rss_mb']} MB (max)",
                "value": r[start]["rss_mb_max"],
                "pass": r[start]["rss_mb_max"] < goal["rss_mb"],
            }
            for start in ("cold", "warm")
        ]
    if name == "downloads":
        goal, ratio = r["goal"], r["throughput"]["ratio"]
        rows = [
            {
                "goal": f"download MB/s through the gateway ≥ {goal['gateway_over_direct']}x "
                "huggingface_hub",
                "value": ratio,
                "pass": ratio >= goal["gateway_over_direct"],
            }
        ]
        for key, label in (("full_speed", "full speed"), ("throttled", "throttled")):
            value = r["health"][key]["p99_ratio"]
            rows.append(
                {
                    "goal": f"/health p99 during a {label} download ≤ "
                    f"{goal['health_p99_ratio']}x idle",
                    "value": value,
                    "pass": value <= goal["health_p99_ratio"],
                }
            )
        return rows
    if name == "rss":
        band = r["goal"]["band_mb"]
        return [
            {
                "goal": f"{phase} generations: RSS within ±{band} MB after the warm-up",
                "value": f"{p['generations']} gens, worst {p['worst_deviation_mb']} MB",
                "pass": p["flat"],
            }
            for phase, p in r["phases"].items()
        ]
    if name == "limits_overhead":
        s = r["sqlite"]["summary"]  # the default database; the file may hold others too
        worst = max((v for values in s["b_minus_a_p50_ms"].values() for v in values), key=abs)
        return [
            {
                "goal": f"c1 p50 with limits on the caller within {s['goal_ms']} ms of none "
                "(TTFT, whole stream, JSON; every run) [issue #19]",
                "value": f"largest B - A at p50 {worst:+.3f} ms",
                "pass": s["pass"],
            }
        ]
    if name == "login_load":
        idle, busy = r["health_idle_ms"], r["health_during_logins_ms"]
        return [
            {
                "goal": "/health p99 ms idle → during concurrent logins (no goal)",
                "value": f"{idle['p99']} → {busy['p99']}",
                "pass": None,
                "note": "information",
            }
        ]
    return []


def _result(ok: bool | None) -> str:
    return "SKIP" if ok is None else "PASS" if ok else "FAIL"


def _markdown(suite: dict[str, Any], parts: dict[str, dict[str, Any]]) -> str:
    m, v = suite["machine"], suite["versions"]
    commit = (v["pluggably_commit"] or "?")[:10] + (
        ", src modified" if v["pluggably_src_dirty"] else ""
    )
    litellm = v["litellm"] or f"not measured (pinned {v['litellm_pinned']})"
    lines = [
        "# Benchmark suite",
        "",
        f"{suite['date']} · {m['cpus']} CPUs ({m['cpu_model']}) · {m['memory_gb']} GiB · "
        f"{m['platform']} · load average before {m['load_average_before']}",
        "",
        f"Versions: Pluggably {v['pluggably']} (commit {commit}) · Python {v['python']} · "
        f"LiteLLM {litellm}.",
        "",
        f"Command: `{suite['command']}` ({suite['elapsed_s']} s in all)"
        + (" — QUICK RUN: short options, the numbers are not results." if suite["quick"] else ""),
        "",
        "| part | command | seconds | results |",
        "|---|---|---|---|",
    ]
    for name, part in parts.items():
        status = part.get("error") or f"`{part['results']}`"
        lines.append(f"| {name} | `{part['command']}` | {part['seconds']} | {status} |")
    lines += ["", "| bench | goal | value | result |", "|---|---|---|---|"]
    for row in suite["summary"]:
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(
            f"| {row['bench']} | {row['goal']} | {row['value']} | {_result(row['pass'])}{note} |"
        )
    overhead = parts.get("overhead", {}).get("data")
    versus = _versus_rows(overhead) if overhead else []
    if versus:
        lines += ["", "Pluggably against LiteLLM's proxy (bench/overhead.py):", "", *versus]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--with-soak", action="store_true", help="also run bench/soak.py")
    parser.add_argument("--with-login-load", action="store_true", help="also bench/login_load.py")
    parser.add_argument("--with-rss", action="store_true", help="also bench/rss.py")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="short options: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        if unknown := sorted(set(names) - set(PARTS)):
            parser.error(f"unknown parts: {unknown}")
    else:
        extra = {"soak": args.with_soak, "login_load": args.with_login_load, "rss": args.with_rss}
        names = [n for n, (_, _, optional) in PARTS.items() if not optional or extra[n]]
    args.out.mkdir(parents=True, exist_ok=True)

    from pluggably import __version__

    began = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    parts = {name: _run_part(name, args) for name in names}
    summary: list[dict[str, Any]] = []
    for name, part in parts.items():
        if "data" not in part:
            summary.append({"bench": name, "goal": "ran", "value": part["error"], "pass": False})
            continue
        summary += [{"bench": name} | row for row in _rows(name, part["data"])]
    overhead = parts.get("overhead", {}).get("data") or {}
    git = _git()
    suite = {
        "benchmark": "suite",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/run_all.py", *sys.argv[1:]]),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_before": load_before,
            "platform": platform.platform(),
        },
        "versions": {
            "pluggably": __version__,
            "pluggably_commit": git["commit"],
            "pluggably_src_dirty": git["src_dirty"],
            "python": platform.python_version(),
            "litellm": (overhead.get("litellm") or {}).get("version"),
            "litellm_pinned": LITELLM_VERSION,
        },
        "parts": {
            name: {k: v for k, v in part.items() if k != "data"} for name, part in parts.items()
        },
        "summary": summary,
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    (args.out / "suite.json").write_text(json.dumps(suite, indent=2, default=str) + "\n")
    md = _markdown(suite, parts)
    (args.out / "suite.md").write_text(md)
    print(md)
    sys.exit(0 if all("data" in part for part in parts.values()) else 1)


if __name__ == "__main__":
    main()
