"""The real command line: `pluggably serve` as a process, as the README runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).with_name("pluggably")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    env.update(
        PLUGGABLY_DATA_DIR=str(tmp_path / "data"),
        PLUGGABLY_SECRET_KEY_FILE=str(tmp_path / "config" / "secret.key"),
        PLUGGABLY_ADMIN_KEY=ADMIN_KEY,
        PLUGGABLY_BUNDLED_MODEL="false",
        **extra,
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def start_server(tmp_path: Path, port: int, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`pluggably serve` with its output in a file (a pipe nobody reads would block it)."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)],
            env=_env(tmp_path, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _wait_ready(f"http://127.0.0.1:{port}", proc, log_path)
    return proc, log_path


def stop_server(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 0, log_path.read_text()
    return log_path.read_text()


def _wait_ready(
    base: str, proc: subprocess.Popen[bytes], log_path: Path, *, timeout_s: float = 30
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not become ready")


def test_serve_answers_and_logs_one_json_line_per_request(tmp_path: Path, free_port: int) -> None:
    proc, log_path = start_server(tmp_path, free_port)
    base = f"http://127.0.0.1:{free_port}"
    try:
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        me = httpx.get(
            f"{base}/v1/users/me?token=query-secret",
            headers={"X-API-Key": ADMIN_KEY, "X-Request-ID": "smoke-1"},
        )
        assert me.status_code == 200
        assert me.headers["x-request-id"] == "smoke-1"
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        output = stop_server(proc, log_path)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in lines if line.get("event") == "request"]
    mine = next(line for line in access if line.get("request_id") == "smoke-1")
    assert mine["method"] == "GET"
    assert mine["route"] == "/v1/users/me"
    assert mine["status"] == 200
    assert mine["principal_id"] == me.json()["id"]
    assert isinstance(mine["latency_ms"], float)
    assert {"timestamp", "level"} <= set(mine)
    # Secrets, headers and query strings never reach the log.
    assert ADMIN_KEY not in output
    assert "query-secret" not in output
    # The master key file was created outside the data dir, private to this user.
    key_file = tmp_path / "config" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_bad_setting_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = _run(["serve"], _env(tmp_path, PLUGGABLY_PORT="eighty"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "PLUGGABLY_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_local_only_refused_beyond_loopback(tmp_path: Path) -> None:
    result = _run(["serve", "--host", "0.0.0.0"], _env(tmp_path, PLUGGABLY_LOCAL_ONLY="1"))
    assert result.returncode == 2
    assert "local_only is refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_line_without_password(tmp_path: Path) -> None:
    url = "postgresql://pluggably:hunter2secret@127.0.0.1:9/pluggably"
    result = _run(["serve"], _env(tmp_path, PLUGGABLY_DATABASE_URL=url))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "is not usable" in result.stderr
    assert "hunter2secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "config" / "secret.key"
    key.parent.mkdir()
    key.write_text("x")
    key.chmod(0o644)
    result = _run(["db", "upgrade"], _env(tmp_path))
    assert result.returncode == 2
    assert "chmod 600" in result.stderr


def test_db_upgrade_works_on_an_existing_database(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = _run(["db", "upgrade"], env)
    assert first.returncode == 0, first.stderr
    second = _run(["db", "upgrade"], env)
    assert second.returncode == 0, second.stderr
    assert "latest revision" in second.stdout
    assert (tmp_path / "data" / "pluggably.db").exists()


def test_version_command() -> None:
    from pluggably import __version__

    result = subprocess.run(
        [str(BIN), "version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == __version__


def test_serve_on_a_terminal_logs_in_the_console_format(tmp_path: Path, free_port: int) -> None:
    """`make serve` on a terminal: stderr is a TTY, so log lines are for a person (no JSON);
    the same server with its output in a file logs JSON (the test above)."""
    import pty
    import threading

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(free_port)],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def drain() -> None:  # a terminal nobody reads would block the server's writes
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the server closed its end
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        _wait_ready(f"http://127.0.0.1:{free_port}", proc, tmp_path / "none.log")
        httpx.get(f"http://127.0.0.1:{free_port}/health", headers={"X-Request-ID": "tty-1"})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(5)
        os.close(controller)
    text = b"".join(chunks).decode()
    assert "\x1b[" in text  # coloured for the terminal
    lines = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()
    request_line = next(line for line in lines if "tty-1" in line)
    assert "request" in request_line
    assert "route=/health" in request_line
    assert [line for line in lines if line.lstrip().startswith("{")] == []
