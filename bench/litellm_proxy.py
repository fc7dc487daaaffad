"""LiteLLM's proxy as a third target for bench/overhead.py, in a venv of its own.

`ensure_venv()` creates bench/.venv-litellm (git-ignored) with the interpreter running the
bench and installs `litellm[proxy]==LITELLM_VERSION` from PyPI with pip; a venv that already
has that version is reused. `LiteLLMProxy` starts its `litellm` CLI on loopback: one uvicorn
worker, no database (no DATABASE_URL), LITELLM_MASTER_KEY set, the bundled cost map
(LITELLM_LOCAL_MODEL_COST_MAP=True: nothing fetched at startup), telemetry off, logs at
ERROR (uvicorn's access log off, as in the gateway), and a config whose model_list points
`gpt-4o-mini` (`openai/gpt-4o-mini`) at the bench's upstream. `start()` returns the proxy,
or None and the reason, so that the bench can skip the LiteLLM rows rather than fail.

Version: 1.80.17, the last 1.80.x, well before the releases reported compromised on PyPI
(1.82.7 and 1.82.8, credential-stealing start-up code; 1.107.0): those are refused here,
and after an install the venv is checked for .pth start-up hooks other than setuptools'.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

LITELLM_VERSION = "1.80.17"
COMPROMISED = frozenset({"1.82.7", "1.82.8", "1.107.0"})
VENV = Path(__file__).resolve().parent / ".venv-litellm"
MASTER_KEY = "sk-bench-litellm-master-0123456789"
UVICORN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
        "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
# .pth files that run at interpreter start-up; only setuptools' own is expected.
EXPECTED_PTH = frozenset({"distutils-precedence.pth"})


def _installed_version(python: Path) -> str | None:
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _unexpected_pth(venv: Path) -> list[str]:
    found = venv.glob("lib/python*/site-packages/*.pth")
    return sorted(p.name for p in found if p.name not in EXPECTED_PTH)


def ensure_venv(venv: Path = VENV, version: str = LITELLM_VERSION) -> Path:
    """The `litellm` CLI of a venv holding litellm[proxy]==version (installed if needed)."""
    if version in COMPROMISED:
        raise RuntimeError(f"litellm {version} is a compromised release; pin another")
    python, cli = venv / "bin" / "python", venv / "bin" / "litellm"
    if cli.exists() and _installed_version(python) == version:
        return cli
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log = venv / "pip-install.log"
    print(f"installing litellm[proxy]=={version} into {venv} (log: {log})", file=sys.stderr)
    with log.open("w") as out:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={version}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        tail = log.read_text()[-1500:]
        raise RuntimeError(f"pip install litellm[proxy]=={version} failed: {tail}")
    installed = _installed_version(python)
    if installed != version or not cli.exists():
        raise RuntimeError(f"litellm {installed} installed, not {version}")
    if odd := _unexpected_pth(venv):
        raise RuntimeError(f"unexpected start-up hooks in {venv}: {odd}; not running it")
    return cli


class LiteLLMProxy:
    def __init__(self, cli: Path, upstream_url: str, api_key: str, tmp: Path, port: int) -> None:
        self.version = _installed_version(cli.with_name("python"))
        config = {
            "model_list": [
                {
                    "model_name": "gpt-4o-mini",
                    "litellm_params": {
                        "model": "openai/gpt-4o-mini",
                        "api_base": upstream_url,
                        "api_key": api_key,
                    },
                }
            ],
            "litellm_settings": {"telemetry": False, "set_verbose": False},
            "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        }
        self.config = config
        config_path = tmp / "litellm.yaml"
        config_path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        # uvicorn at WARNING, no access log: like the gateway (PLUGGABLY_LOG_LEVEL=warning).
        log_config = tmp / "litellm-logging.json"
        log_config.write_text(json.dumps(UVICORN_LOGGING))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM", "DATABASE"))}
        env |= {
            "LITELLM_MASTER_KEY": MASTER_KEY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",  # no .env file loading
            "DISABLE_ADMIN_UI": "True",
            "NO_DOCS": "True",
        }
        self.command = [
            str(cli),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
            "--telemetry",
            "False",
            "--log_config",
            str(log_config),
        ]
        self.log = tmp / "litellm.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.base = f"http://127.0.0.1:{port}"
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"litellm exited ({self.proc.returncode}): {self.log_tail()}"
                    )
                try:
                    if client.get("/health/liveliness").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"litellm not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def rss_mb(self) -> float:
        """RSS of the proxy process and any children it started."""
        total = 0
        for proc in (self.ps, *self.ps.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                total += int(proc.memory_info().rss)
        return round(total / 1e6, 1)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start(
    upstream_url: str, api_key: str, tmp: Path, port: int
) -> tuple[LiteLLMProxy | None, str | None]:
    """The running proxy, or (None, why it is not there)."""
    try:
        cli = ensure_venv()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return None, f"LiteLLM not installed: {exc}"
    try:
        proxy = LiteLLMProxy(cli, upstream_url, api_key, tmp, port)
    except OSError as exc:
        return None, f"LiteLLM proxy did not start: {exc}"
    try:
        proxy.wait_ready()
        # One real call: the proxy answers and reaches the upstream.
        response = httpx.post(
            f"{proxy.base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
            timeout=60,
        )
        if response.status_code != 200:
            raise RuntimeError(f"probe call: HTTP {response.status_code} {response.text[:500]}")
    except (OSError, RuntimeError, httpx.HTTPError) as exc:
        proxy.close()
        return None, f"LiteLLM proxy did not start: {exc}"
    return proxy, None
