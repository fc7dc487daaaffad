"""Startup-to-ready time and idle memory of `pluggably serve` (no models).

Run:  .venv/bin/python bench/startup.py [--runs 5] [--out bench/results]

Each run starts the real CLI as a subprocess on a free port and polls /ready
every 5 ms; "cold" runs use an empty data dir (directories, key file and all
migrations are created), "warm" runs reuse it. Idle RSS is read from the server
process after it has answered 50 requests and sat idle for one second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

BIN = Path(sys.executable).with_name("pluggably")
ADMIN_KEY = "bench-admin-key-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(root: Path) -> dict[str, float]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    env |= {
        "PLUGGABLY_DATA_DIR": str(root / "data"),
        "PLUGGABLY_SECRET_KEY_FILE": str(root / "config" / "secret.key"),
        "PLUGGABLY_ADMIN_KEY": ADMIN_KEY,
        "PLUGGABLY_LOG_LEVEL": "warning",
        "PLUGGABLY_BUNDLED_MODEL": "false",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=2) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}")
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.005)
            ready_s = time.perf_counter() - start
            for _ in range(25):
                client.get("/health")
                client.get("/v1/users/me", headers={"X-API-Key": ADMIN_KEY})
            time.sleep(1)
            rss = psutil.Process(proc.pid).memory_info().rss
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    return {"ready_s": ready_s, "rss_mb": rss / 1e6}


def summarize(samples: list[dict[str, float]]) -> dict[str, float]:
    ready = [s["ready_s"] for s in samples]
    rss = [s["rss_mb"] for s in samples]
    return {
        "runs": len(samples),
        "ready_s_median": round(statistics.median(ready), 3),
        "ready_s_max": round(max(ready), 3),
        "rss_mb_median": round(statistics.median(rss), 1),
        "rss_mb_max": round(max(rss), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            cold.append(one_run(Path(tmp)))
            warm.append(one_run(Path(tmp)))
    from pluggably import __version__

    result = {
        "benchmark": "startup",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python bench/startup.py --runs {args.runs}",
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "pluggably": __version__,
        "cold": summarize(cold),
        "warm": summarize(warm),
        "goal": {"ready_s": 2.0, "rss_mb": 150},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        "| start | runs | ready median (s) | ready max (s) | idle RSS median (MB) | RSS max (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("cold", "warm"):
        s = result[name]
        rows.append(
            f"| {name} | {s['runs']} | {s['ready_s_median']} | {s['ready_s_max']} "
            f"| {s['rss_mb_median']} | {s['rss_mb_max']} |"
        )
    m = result["machine"]
    md = (
        f"# Startup benchmark\n\n{result['date']} · pluggably {__version__} · "
        f"{m['cpus']} CPUs, {m['memory_gb']} GiB · Python {m['python']} · {m['platform']}\n\n"
        f"Command: `{result['command']}` (goal: ready < 2 s, idle RSS < 150 MB)\n\n"
        + "\n".join(rows)
        + "\n"
    )
    (args.out / "startup.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
