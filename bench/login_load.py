"""Does password hashing stall the server? /health latency while 20 logins run
at once, against /health latency on an idle server.

Run:  .venv/bin/python bench/login_load.py [--concurrency 20] [--rounds 5]

Starts the real `pluggably serve` (SQLite) as a subprocess, registers one user
through an invite, then measures sequential /health round trips on loopback
while the server is idle and while `--rounds` waves of `--concurrency`
simultaneous logins (argon2id) are in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

BIN = Path(sys.executable).with_name("pluggably")
ADMIN_KEY = "bench-admin-key-0123456789"
PASSWORD = "bench-password-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def _health_probe(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    samples = []
    while not stop.is_set():
        start = time.perf_counter()
        response = await client.get("/health")
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
        await asyncio.sleep(0.005)
    return samples


async def _measure(base: str, concurrency: int, rounds: int) -> dict[str, object]:
    limits = httpx.Limits(max_connections=concurrency + 5)
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client,
        httpx.AsyncClient(base_url=base, timeout=60) as prober,
    ):
        admin = {"X-API-Key": ADMIN_KEY}
        invite = (await client.post("/v1/users/invites", json={}, headers=admin)).json()["token"]
        body = {"username": "bench", "password": PASSWORD, "invite_token": invite}
        assert (await client.post("/v1/users/register", json=body)).status_code == 201

        stop = asyncio.Event()
        idle_task = asyncio.create_task(_health_probe(prober, stop))
        await asyncio.sleep(2)
        stop.set()
        idle = await idle_task

        stop = asyncio.Event()
        busy_task = asyncio.create_task(_health_probe(prober, stop))
        login_ms: list[float] = []
        start = time.perf_counter()

        async def one_login() -> None:
            t0 = time.perf_counter()
            r = await client.post(
                "/v1/users/login", json={"username": "bench", "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            login_ms.append((time.perf_counter() - t0) * 1000)

        for _ in range(rounds):
            await asyncio.gather(*(one_login() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        stop.set()
        busy = await busy_task
    return {
        "health_idle_ms": {
            "n": len(idle),
            "p50": _pct(idle, 0.5),
            "p99": _pct(idle, 0.99),
            "max": round(max(idle), 2),
        },
        "health_during_logins_ms": {
            "n": len(busy),
            "p50": _pct(busy, 0.5),
            "p99": _pct(busy, 0.99),
            "max": round(max(busy), 2),
        },
        "logins": {
            "n": len(login_ms),
            "per_s": round(len(login_ms) / elapsed, 1),
            "p50_ms": _pct(login_ms, 0.5),
            "max_ms": round(max(login_ms), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
        env |= {
            "PLUGGABLY_DATA_DIR": f"{tmp}/data",
            "PLUGGABLY_SECRET_KEY_FILE": f"{tmp}/config/secret.key",
            "PLUGGABLY_ADMIN_KEY": ADMIN_KEY,
            "PLUGGABLY_LOG_LEVEL": "warning",
            "PLUGGABLY_BUNDLED_MODEL": "false",
            "PLUGGABLY_LOGIN_MAX_FAILURES": "1000",
        }
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            result = asyncio.run(_measure(base, args.concurrency, args.rounds))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    from pluggably import __version__

    report = {
        "benchmark": "login_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": (
            f"python bench/login_load.py --concurrency {args.concurrency} --rounds {args.rounds}"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "pluggably": __version__,
        **result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "login_load.json").write_text(json.dumps(report, indent=2) + "\n")
    idle, busy, logins = (
        report["health_idle_ms"],
        report["health_during_logins_ms"],
        report["logins"],
    )
    md = (
        f"# Login load benchmark\n\n{report['date']} · pluggably {__version__} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()}\n\n"
        f"Command: `{report['command']}`\n\n"
        "| /health latency (ms) | n | p50 | p99 | max |\n|---|---|---|---|---|\n"
        f"| idle | {idle['n']} | {idle['p50']} | {idle['p99']} | {idle['max']} |\n"  # type: ignore[index]
        f"| during {args.concurrency} concurrent logins | {busy['n']} | {busy['p50']} "  # type: ignore[index]
        f"| {busy['p99']} | {busy['max']} |\n\n"  # type: ignore[index]
        f"Logins: {logins['n']} at {logins['per_s']}/s, p50 {logins['p50_ms']} ms, "  # type: ignore[index]
        f"max {logins['max_ms']} ms (argon2id, 19 MiB, t=2, p=1).\n"  # type: ignore[index]
    )
    (args.out / "login_load.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
