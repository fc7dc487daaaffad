"""Replicas and workers behind nginx at saturation (issue #21), in one run with wrk.

Run:  .venv/bin/python bench/replicas.py [--concurrency 64] [--seconds 10] [--no-litellm]
Needs PostgreSQL (PLUGGABLY_BENCH_POSTGRES_URL, else PLUGGABLY_TEST_POSTGRES_URL: a role
that may create databases), and nginx and wrk from Debian (`apt-get install nginx-light
wrk`). Writes bench/results/replicas.{json,md}.

Targets, all answering from the same upstream (bench/overhead.py's raw asyncio server,
cached 20-token replies, no added latency), JSON and streamed:
- direct: the upstream itself;
- nginx: nginx in front of the upstream (what the proxy alone adds);
- 1 replica / 2 replicas: nginx (deploy/nginx.conf's proxy settings) in front of one or
  two ``pluggably serve`` processes on one fresh PostgreSQL database;
- 2 workers: nginx in front of one ``pluggably serve --workers 2``;
- LiteLLM: its proxy (bench/litellm_proxy.py, one worker), without nginx.
Each target: a warm-up, then a measured wrk run at each level (keep-alive connections =
the level, closed loop). Added = the target's percentile minus direct's at the same
level. Everything shares this machine's CPUs: wrk, nginx, the upstream, PostgreSQL and
the servers; the report says how many there are, and the scaling ratio is what this
machine gives, not what more cores would."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import overhead as ov
from litellm_proxy import MASTER_KEY
from litellm_proxy import start as start_litellm

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MODES = ("json", "stream")
GOAL_FACTOR = 10.0  # added p99 at c64 at most LiteLLM's / 10


# -- PostgreSQL ----------------------------------------------------------------------------------
@contextmanager
def fresh_database() -> Iterator[str]:
    import asyncpg  # type: ignore[import-untyped]

    base = os.environ.get("PLUGGABLY_BENCH_POSTGRES_URL") or os.environ.get(
        "PLUGGABLY_TEST_POSTGRES_URL"
    )
    if not base:
        raise SystemExit(
            "set PLUGGABLY_BENCH_POSTGRES_URL (postgresql+asyncpg://…): replicas need it"
        )
    name = f"pluggably_bench_{secrets.token_hex(4)}"
    server = base.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- servers -------------------------------------------------------------------------------------
class Server:
    """One ``pluggably serve`` (with ``--workers`` when asked) on the shared database."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str], workers: int = 1) -> None:
        self.port = ov._free_port()
        self.log = tmp / f"{name}.log"
        argv = [str(ov.BIN), "serve", "--port", str(self.port)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
        self.base = f"http://127.0.0.1:{self.port}"
        _wait_ready(self.base, self.proc, self.log)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} not ready after 60 s")


def server_env(tmp: Path, database_url: str, upstream_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    return env | {
        "PLUGGABLY_DATABASE_URL": database_url,
        "PLUGGABLY_DATA_DIR": str(tmp / "data"),
        "PLUGGABLY_SECRET_KEY_FILE": str(tmp / "config" / "secret.key"),
        "PLUGGABLY_ADMIN_KEY": ov.ADMIN_KEY,
        "PLUGGABLY_LOG_LEVEL": "warning",
        "PLUGGABLY_BUNDLED_MODEL": "false",
        "PLUGGABLY_LOCAL_MODELS": "false",
        "PLUGGABLY_TRUSTED_PROXIES": '["127.0.0.1"]',
        "PLUGGABLY_PROVIDERS__OPENAI__BASE_URL": upstream_url,
        "PLUGGABLY_PROVIDERS__OPENAI__API_KEY": ov.API_KEY,
        "PLUGGABLY_SERVER_KEYS_ALLOWED": '["@admins"]',
    }


class Nginx:
    """nginx as the current user, in front of ``upstreams`` (host:port), with the proxy
    settings of deploy/nginx.conf: keep-alive to the upstreams, no buffering, least_conn."""

    def __init__(self, name: str, tmp: Path, upstreams: list[str]) -> None:
        self.port = ov._free_port()
        prefix = tmp / f"nginx-{name}"
        (prefix / "logs").mkdir(parents=True)
        servers = "\n".join(f"    server {u} max_fails=0;" for u in upstreams)
        conf = f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream pluggably {{
    least_conn;
{servers}
    keepalive 128;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    client_max_body_size 32m;
    location / {{
      proxy_pass http://pluggably;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }}
  }}
}}
"""
        conf_path = prefix / "nginx.conf"
        conf_path.write_text(conf)
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf_path), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(self.base + "/", timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nginx did not start: {self.proc.stderr.read()!r}"
                    ) from None
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- measuring -----------------------------------------------------------------------------------
def _gateway(base: str) -> ov.Target:
    return ov.Target(base, "/v1/generate", {"X-API-Key": ov.ADMIN_KEY}, ov._gateway_body)


def _openai(base: str, key: str) -> ov.Target:
    return ov.Target(base, "/chat/completions", {"Authorization": f"Bearer {key}"}, ov._direct_body)


def _check(target: ov.Target, stream: bool) -> None:
    """One real call first: a target that answers errors is not measured."""

    async def call() -> None:
        async with httpx.AsyncClient(base_url=target.base, headers=target.headers) as client:
            await (ov._stream_call if stream else ov._json_call)(
                client, target.path, target.body(stream)
            )

    asyncio.run(call())


def _measure(args: argparse.Namespace, tmp: Path, name: str, target: ov.Target) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        stream = mode == "stream"
        _check(target, stream)
        script = tmp / f"wrk-{name.replace(' ', '-')}-{mode}.lua"
        script.write_text(ov._lua_script(target, stream))
        out[mode] = {}
        for level in args.concurrency:
            ov._wrk(args, script, target.url, level, args.warmup_s)
            run = ov._wrk(args, script, target.url, level, args.seconds)
            out[mode][f"c{level}"] = run
            print(
                f"{mode:6} c{level:<4} {name:12} {run['rps']:>9} req/s  p50 {run['p50_ms']}  "
                f"p99 {run['p99_ms']}  failed {run['failed']}",
                file=sys.stderr,
            )
    return out


def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        upstream = ov.Upstream("fast", 0)
        stack.callback(upstream.close)
        direct_base = upstream.base_url.removesuffix("/v1")
        host = direct_base.removeprefix("http://")
        url = stack.enter_context(fresh_database())
        env = server_env(tmp, url, upstream.base_url)
        a = Server("replica-a", tmp, env)
        stack.callback(a.close)
        b = Server("replica-b", tmp, env)
        stack.callback(b.close)
        workers = Server("workers", tmp, env, workers=2)
        stack.callback(workers.close)
        proxies = {}
        for name, ups in (
            ("nginx", [host]),
            ("1 replica", [f"127.0.0.1:{a.port}"]),
            ("2 replicas", [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]),
            ("2 workers", [f"127.0.0.1:{workers.port}"]),
        ):
            proxies[name] = Nginx(name.replace(" ", "-"), tmp, ups)
            stack.callback(proxies[name].close)
        targets = {
            "direct": _openai(upstream.base_url, ov.API_KEY),
            "nginx": _openai(proxies["nginx"].base + "/v1", ov.API_KEY),
            "1 replica": _gateway(proxies["1 replica"].base),
            "2 replicas": _gateway(proxies["2 replicas"].base),
            "2 workers": _gateway(proxies["2 workers"].base),
        }
        if not args.no_litellm:
            litellm, why = start_litellm(upstream.base_url, ov.API_KEY, tmp, ov._free_port())
            if litellm is not None:
                stack.callback(litellm.close)
                targets["LiteLLM"] = _openai(litellm.base + "/v1", MASTER_KEY)
                results["litellm_version"] = litellm.version
            else:
                results["litellm_skipped"] = why
        results["runs"] = {name: _measure(args, tmp, name, t) for name, t in targets.items()}
    return results


def _added(runs: dict[str, Any], name: str, mode: str, level: str, p: str) -> float | None:
    mine, direct = runs.get(name, {}).get(mode, {}).get(level), runs["direct"][mode][level]
    if not mine or mine.get(p) is None:
        return None
    return round(mine[p] - direct[p], 3)


def _report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    lines = [
        "# Replicas and workers behind nginx",
        "",
        f"{result['date']} · commit {result['commit']} · {result['machine']['cpus']} CPUs · "
        f"Python {result['machine']['python']}",
        "",
        f"Command: `{result['command']}`. wrk {result['wrk']}, 1 thread, keep-alive "
        "connections = the level, closed loop, a warm-up then a measured run per level. "
        "Everything shares the machine's CPUs (wrk, nginx, upstream, PostgreSQL, servers). "
        "Added = target - direct at the same level and percentile. Times in ms.",
        "",
        "wrk CPU = wrk's CPU time / wall time (1.0: one core busy, where it would be the "
        "bottleneck).",
        "",
        "| mode | level | target | req/s | failed | p50 | p90 | p99 | added p50 | added p99 "
        "| wrk CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for name, by_mode in runs.items():
            for level, run in by_mode[mode].items():
                lines.append(
                    f"| {mode} | {level} | {name} | {run['rps']} | {run['failed']} | "
                    f"{run['p50_ms']} | {run['p90_ms']} | {run['p99_ms']} | "
                    f"{_added(runs, name, mode, level, 'p50_ms')} | "
                    f"{_added(runs, name, mode, level, 'p99_ms')} | {run['wrk_cpu_share']} |"
                )
    lines += ["", "## Scaling and goals", ""]
    for mode in MODES:
        for level in runs["direct"][mode]:
            one = runs["1 replica"][mode][level]["rps"]
            for name in ("2 replicas", "2 workers"):
                two = runs[name][mode][level]["rps"]
                lines.append(
                    f"- {mode} {level}: {name} {two} req/s vs 1 replica {one} req/s: "
                    f"x{round(two / one, 2) if one else '-'}"
                )
            if "LiteLLM" in runs:
                theirs = _added(runs, "LiteLLM", mode, level, "p99_ms")
                for name in ("1 replica", "2 replicas", "2 workers"):
                    mine = _added(runs, name, mode, level, "p99_ms")
                    ok = mine is not None and theirs is not None and mine <= theirs / GOAL_FACTOR
                    lines.append(
                        f"- {mode} {level}: {name} added p99 {mine} vs LiteLLM's {theirs} "
                        f"(goal ≤ {round(theirs / GOAL_FACTOR, 3) if theirs else '-'}): "
                        f"{'PASS' if ok else 'FAIL'}"
                    )
    if "litellm_skipped" in result:
        lines.append(f"- LiteLLM skipped: {result['litellm_skipped']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=ov._levels, default=[64])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup-s", type=int, default=2)
    parser.add_argument("--wrk", default=shutil.which("wrk"))
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--wrk-timeout-s", type=int, default=30)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not args.wrk:
        parser.error("wrk not found (apt-get install wrk)")
    if not Path(NGINX).exists():
        parser.error("nginx not found (apt-get install nginx-light)")
    with tempfile.TemporaryDirectory() as tmp:
        measured = _run(args, Path(tmp))
    commit = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    result = {
        "benchmark": "replicas",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/replicas.py", *sys.argv[1:]]),
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "wrk": ov._wrk_version(args.wrk),
        **measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replicas.json").write_text(json.dumps(result, indent=2) + "\n")
    report = _report(result)
    (args.out / "replicas.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
