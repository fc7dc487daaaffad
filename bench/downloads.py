"""Model download throughput through the gateway against huggingface_hub itself, and
/health latency while a download runs.

Run:  .venv/bin/python bench/downloads.py [--size-mb 512] [--runs 3] [--out bench/results]

A FakeHub (tests/fixtures/hf_hub.py) serves one GGUF file from memory on loopback,
in this process. Every run puts it under a new repo id, so that neither the
gateway's dedupe nor a cache can skip the transfer, and checks that the hub sent
every byte of it; caches are fresh temporary folders.

Throughput, --runs times each, alternating which goes first, after one untimed
warm-up of each (dirty pages are synced before every timed run):
- gateway: the real `pluggably serve` (subprocess) downloads it on
  POST /v1/models/download; the time runs from the POST until GET /v1/jobs/{id},
  polled every 20 ms, says completed. The polls also split it into planning (to
  the first byte), transfer (to the last byte) and finishing (checksum, install,
  register).
- direct: `huggingface_hub.hf_hub_download(repo, file, cache_dir=<fresh tmp>,
  endpoint=hub.url)` timed around the call in a helper process (so that, like
  the gateway, it does not share this process's GIL with the hub); progress bars
  off. The helper checks that the hub advertises no Xet, so it is plain HTTP.

/health latency: sequential GETs on one keep-alive connection, 5 ms apart, from a
helper process. Before each loaded window, --health-s on the idle server (the
idle windows are pooled); loaded windows last from the POST until the job
completes:
- full speed: the file is enlarged (up to --max-mb) so that at the gateway's
  measured speed the download lasts at least 3 s;
- throttled: the --size-mb file with the hub throttled (hub.throttle_bps) to
  --throttle-mbps or less, so that it lasts at least 3 s: closer to a download
  from the real Hub, where the hub is not on this machine's CPUs;
- control: the full-speed hub sends the same big file to hf_hub_download while
  the gateway is idle, i.e. what the load on this 2-CPU machine alone costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"  # before huggingface_hub reads its constants

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.hf_hub import FakeHub  # noqa: E402

BIN = Path(sys.executable).with_name("pluggably")
ADMIN_KEY = "bench-admin-key-0123456789"
FILENAME = "model-Q4_K_M.gguf"
MIB = 1 << 20
MIN_BUSY_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _gguf_bytes(size_mb: int) -> bytes:
    """`size_mb` MiB: one pseudo-random MiB repeated, starting with the GGUF magic."""
    block = random.Random(size_mb).randbytes(MIB)
    return b"GGUF" + (block * size_mb)[4:]


def _add(hub: FakeHub, repo_id: str, data: bytes) -> None:
    repo = hub.add_model(repo_id, {FILENAME: data}, tags=("gguf",), library_name="gguf")
    hub.blob_id(repo.files[FILENAME])  # hash it now (cached), not while a client waits


def _helper_env(tmp: Path) -> dict[str, str]:
    env = os.environ | {
        "HF_HOME": str(tmp / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_DISABLE_XET"):
        env.pop(name, None)
    return env


# -- helper processes (this same file, with a hidden flag) --------------------------------------
def _direct_worker() -> None:
    """Reads {repo, filename, cache_dir, endpoint} lines, answers {seconds, size, xet} lines."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.utils._runtime import is_xet_available

    assert constants.HF_HUB_DISABLE_TELEMETRY
    print(json.dumps({"xet_available": is_xet_available()}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        url = hf_hub_url(job["repo"], job["filename"], endpoint=job["endpoint"])
        xet = get_hf_file_metadata(url).xet_file_data is not None
        start = time.perf_counter()
        path = hf_hub_download(
            job["repo"], job["filename"], cache_dir=job["cache_dir"], endpoint=job["endpoint"]
        )
        seconds = time.perf_counter() - start
        answer = {"seconds": seconds, "size": os.path.getsize(path), "xet": xet}
        print(json.dumps(answer), flush=True)


def _probe_worker(base: str) -> None:
    """/health round trips until a line arrives on stdin; then prints the latencies (ms)."""
    samples = []
    with httpx.Client(base_url=base, timeout=10) as client:
        client.get("/health")  # connect outside the samples
        print("ready", flush=True)
        while not select.select([sys.stdin], [], [], 0)[0]:
            start = time.perf_counter()
            response = client.get("/health")
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
            time.sleep(0.005)
    print(json.dumps(samples), flush=True)


class Prober:
    def __init__(self, base: str, tmp: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--probe-worker", base],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_helper_env(tmp),
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> list[float]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        samples = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout=30)
        return samples


class Direct:
    def __init__(self, endpoint: str, tmp: Path) -> None:
        self.endpoint, self.tmp = endpoint, tmp
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--direct-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_helper_env(tmp),
            text=True,
        )
        assert self.proc.stdout is not None
        self.xet_available = json.loads(self.proc.stdout.readline())["xet_available"]

    def download(self, repo_id: str) -> dict[str, Any]:
        cache = Path(tempfile.mkdtemp(dir=self.tmp, prefix="hf-cache-"))  # fresh every run
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        job = {"repo": repo_id, "filename": FILENAME, "cache_dir": str(cache)}
        self.proc.stdin.write(json.dumps(job | {"endpoint": self.endpoint}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        shutil.rmtree(cache, ignore_errors=True)
        if not line:
            raise RuntimeError("the direct-download helper died")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# -- gateway ------------------------------------------------------------------------------------
class Gateway:
    def __init__(self, hub_url: str, tmp: Path) -> None:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGGABLY_", "HF_"))}
        env |= {
            "PLUGGABLY_DATA_DIR": str(tmp / "data"),
            "PLUGGABLY_SECRET_KEY_FILE": str(tmp / "config" / "secret.key"),
            "PLUGGABLY_ADMIN_KEY": ADMIN_KEY,
            "PLUGGABLY_LOG_LEVEL": "warning",
            "PLUGGABLY_BUNDLED_MODEL": "false",
            "PLUGGABLY_HF_ENDPOINT": hub_url,
            "HF_HOME": str(tmp / "server-hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, timeout=60, headers={"X-API-Key": ADMIN_KEY})
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if self.client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready after 30 s")

    def submit(self, repo_id: str) -> str:
        body = {"source": {"type": "huggingface", "id": repo_id}}
        response = self.client.post("/v1/models/download", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def wait(self, job_id: str, start: float, poll_s: float = 0.02) -> dict[str, float]:
        first_byte = last_byte = None
        while True:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            now = time.perf_counter()
            if first_byte is None and job["bytes_done"] > 0:
                first_byte = now
            total = job["bytes_total"]
            if last_byte is None and total and job["bytes_done"] >= total:
                last_byte = now
            if job["status"] == "completed":
                first, last = first_byte or now, last_byte or now
                return {
                    "seconds": now - start,
                    "plan_s": first - start,
                    "transfer_s": last - first,
                    "finish_s": now - last,
                }
            if job["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"download {job['status']}: {job['error']}")
            time.sleep(poll_s)

    def download(self, repo_id: str) -> dict[str, float]:
        start = time.perf_counter()
        done = self.wait(self.submit(repo_id), start)
        self.delete(repo_id)
        return done

    def delete(self, model_id: str) -> None:
        response = self.client.delete(f"/v1/models/{model_id}")
        assert response.status_code == 204, response.text  # frees the disk for the next run

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- measurements -------------------------------------------------------------------------------
def _check_sent(hub: FakeHub, repo_id: str, size: int) -> None:
    sent = hub.bytes_sent[(repo_id, FILENAME)]
    assert sent == size, f"{repo_id}: the hub sent {sent} of {size} bytes"


def _throughput(
    gw: Gateway, direct: Direct, hub: FakeHub, data: bytes, runs: int
) -> dict[str, Any]:
    mb = len(data) / 1e6
    _add(hub, "warmup/gateway", data[: 4 * MIB])
    _add(hub, "warmup/direct", data[: 4 * MIB])
    gw.download("warmup/gateway")
    assert not direct.download("warmup/direct")["xet"], "the hub advertised Xet"
    samples: dict[str, list[dict[str, float]]] = {"gateway": [], "direct": []}
    for i in range(runs):
        for way in ("gateway", "direct") if i % 2 == 0 else ("direct", "gateway"):
            repo_id = f"bench/{way}-{i}"
            _add(hub, repo_id, data)
            os.sync()  # no writeback of the previous run's pages during this one
            sample = gw.download(repo_id) if way == "gateway" else direct.download(repo_id)
            _check_sent(hub, repo_id, len(data))
            if way == "direct":
                assert not sample.pop("xet"), "the hub advertised Xet for this file"
                assert sample.pop("size") == len(data)
                cdn = [r.path for r in hub.requests if r.path.startswith("/cdn-lfs/")]
                assert any(f"repo=bench%2F{way}-{i}&" in p for p in cdn), "no plain HTTP GET"
            samples[way].append({k: round(v, 3) for k, v in sample.items()})
            del hub.repos[repo_id]
    result: dict[str, Any] = {}
    for way, runs_ in samples.items():
        secs = [s["seconds"] for s in runs_]
        result[way] = {
            "runs": runs_,
            "mb_per_s": [round(mb / s, 1) for s in secs],
            "median_s": statistics.median(secs),
            "median_mb_per_s": round(mb / statistics.median(secs), 1),
        }
    gateway = result["gateway"]
    for phase in ("plan_s", "transfer_s", "finish_s"):
        median = statistics.median(s[phase] for s in samples["gateway"])
        gateway[f"median_{phase}"] = round(median, 3)
    gateway["median_transfer_mb_per_s"] = round(mb / gateway["median_transfer_s"], 1)
    result["ratio"] = round(gateway["median_mb_per_s"] / result["direct"]["median_mb_per_s"], 3)
    return result


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": _pct(samples, 0.5),
        "p99": _pct(samples, 0.99),
        "max": round(max(samples), 2),
    }


def _health(
    gw: Gateway,
    direct: Direct,
    hub: FakeHub,
    data: bytes,
    tmp: Path,
    *,
    gateway_mbps: float,
    idle_s: float,
    max_mb: int,
    throttle_mbps: float,
) -> dict[str, Any]:
    # Full speed: big enough to last MIN_BUSY_S (with margin) at the measured gateway speed.
    want_mb = int(gateway_mbps * 1e6 * MIN_BUSY_S * 1.5 / MIB) + 1
    big_mb = max(len(data) // MIB, min(want_mb, max_mb))
    big = data if big_mb == len(data) // MIB else _gguf_bytes(big_mb)
    # Throttled: the bench file, at most throttle_mbps, and slow enough to last MIN_BUSY_S.
    throttle = int(min(throttle_mbps * 1e6, len(data) / (MIN_BUSY_S * 1.5)))
    loads = [
        ("full_speed", "gateway", big, None),
        ("throttled", "gateway", data, throttle),
        ("control", "direct", big, None),
    ]
    idle: list[float] = []
    result: dict[str, Any] = {}
    for name, way, payload, bps in loads:
        os.sync()
        prober = Prober(gw.base, tmp)
        time.sleep(idle_s)
        idle += prober.stop()
        repo_id = f"health/{name}"
        _add(hub, repo_id, payload)
        hub.throttle_bps = bps
        prober = Prober(gw.base, tmp)
        try:
            start = time.perf_counter()
            if way == "gateway":
                seconds = gw.wait(gw.submit(repo_id), start, poll_s=0.1)["seconds"]
            else:
                seconds = direct.download(repo_id)["seconds"]
        finally:
            busy = prober.stop()
            hub.throttle_bps = None
        _check_sent(hub, repo_id, len(payload))
        if way == "gateway":
            gw.delete(repo_id)
        del hub.repos[repo_id]
        result[name] = {
            "client": way,
            "download_mib": len(payload) // MIB,
            "throttle_bps": bps,
            "download_s": round(seconds, 2),
            "lasted_3s": seconds >= MIN_BUSY_S,
            "download_mb_per_s": round(len(payload) / 1e6 / seconds, 1),
            "health_ms": _stats(busy),
        }
    result["idle"] = {"health_ms": _stats(idle), "windows": len(loads), "window_s": idle_s}
    for name, *_ in loads:
        result[name]["p99_ratio"] = round(
            result[name]["health_ms"]["p99"] / result["idle"]["health_ms"]["p99"], 2
        )
    return result


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=512, help="MiB of the GGUF file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--health-s", type=float, default=2.0, help="each idle /health window")
    parser.add_argument("--max-mb", type=int, default=2048, help="largest full-speed file")
    parser.add_argument("--throttle-mbps", type=float, default=100.0, help="throttled run's cap")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--direct-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_worker:
        return _direct_worker()
    if args.probe_worker:
        return _probe_worker(args.probe_worker)

    data = _gguf_bytes(args.size_mb)
    began = time.perf_counter()
    with FakeHub() as hub, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gw = Gateway(hub.url, tmp)
        try:
            direct = Direct(hub.url, tmp)
        except BaseException:
            gw.close()
            raise
        try:
            throughput = _throughput(gw, direct, hub, data, args.runs)
            health = _health(
                gw,
                direct,
                hub,
                data,
                tmp,
                gateway_mbps=throughput["gateway"]["median_mb_per_s"],
                idle_s=args.health_s,
                max_mb=args.max_mb,
                throttle_mbps=args.throttle_mbps,
            )
        finally:
            direct.close()
            gw.close()
        assert not hub.errors, f"the fake hub itself failed: {hub.errors!r}"

    from pluggably import __version__

    command = shlex.join([".venv/bin/python", "bench/downloads.py", *sys.argv[1:]])
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    options = {k: v for k, v in options.items() if not k.endswith("_worker")}
    result = {
        "benchmark": "downloads",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "options": options,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "pluggably": __version__,
        "file_mib": args.size_mb,
        "xet": {"hf_xet_installed": direct.xet_available, "used": False},
        "throughput": throughput,
        "health": health,
        "goal": {"gateway_over_direct": 0.9, "health_p99_ratio": 1.2},
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "downloads.json").write_text(json.dumps(result, indent=2) + "\n")
    md = _markdown(result)
    (args.out / "downloads.md").write_text(md)
    print(md)


def _markdown(r: dict[str, Any]) -> str:
    t, h, m = r["throughput"], r["health"], r["machine"]
    g = t["gateway"]
    health_rows = [
        ("idle", "idle (pooled windows)"),
        ("full_speed", f"gateway downloading {h['full_speed']['download_mib']} MiB, full speed"),
        ("throttled", f"gateway downloading {h['throttled']['download_mib']} MiB, hub throttled"),
        ("control", f"control: hf_hub_download of {h['control']['download_mib']} MiB"),
    ]
    lines = [
        "| download | runs | median MB/s | per run MB/s |",
        "|---|---|---|---|",
        f"| gateway (POST → job completed) | {len(g['runs'])} | {g['median_mb_per_s']} "
        f"| {', '.join(map(str, g['mb_per_s']))} |",
        f"| hf_hub_download | {len(t['direct']['runs'])} | {t['direct']['median_mb_per_s']} "
        f"| {', '.join(map(str, t['direct']['mb_per_s']))} |",
        "",
        f"Gateway / direct: **{t['ratio']}** (goal ≥ 0.9). Gateway medians: planning "
        f"{g['median_plan_s']} s, transfer {g['median_transfer_s']} s "
        f"({g['median_transfer_mb_per_s']} MB/s), checksum + install + register "
        f"{g['median_finish_s']} s.",
        "",
        "| /health latency (ms) | download | n | p50 | p99 | max | p99 / idle p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in health_rows:
        s, row = h[key]["health_ms"], h[key]
        load = f"{row['download_s']} s at {row['download_mb_per_s']} MB/s" if key != "idle" else "-"
        ratio = row.get("p99_ratio", "-")
        lines.append(
            f"| {label} | {load} | {s['n']} | {s['p50']} | {s['p99']} | {s['max']} | {ratio} |"
        )
    thr = h["throttled"]["throttle_bps"] / 1e6
    lines += [
        "",
        f"Goal: p99 ratio ≤ 1.2. Full speed: the file was enlarged so the download lasts ≥ 3 s; "
        f"the hub (in the benchmark process) and the client then share the {m['cpus']} CPUs. "
        f"Throttled: hub.throttle_bps = {thr:.0f} MB/s. Control: the gateway is idle while "
        "the hub sends the big file to hf_hub_download.",
    ]
    return (
        f"# Download benchmark\n\n{r['date']} · pluggably {r['pluggably']} · "
        f"{m['cpus']} CPUs · Python {m['python']} · {m['platform']}\n\n"
        f"Command: `{r['command']}` ({r['file_mib']} MiB GGUF from a FakeHub on loopback, "
        f"MB = 10^6 bytes; {r['elapsed_s']} s in all)\n\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
