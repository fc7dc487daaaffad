"""Replicas as API.md §11 runs them, on this machine: real ``pluggably serve``
processes on one fresh PostgreSQL database, sharing the data directory and the
secret key (as replicas behind a load balancer share a volume and a key)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, PG_URL_ENV, _drop_database, unused_port
from tests.serving.test_serve import BIN, _wait_ready

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def postgres_url() -> str:
    """The test PostgreSQL server; without one these tests skip (or fail when CI
    requires PostgreSQL)."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    if os.environ.get("PLUGGABLY_TEST_REQUIRE_POSTGRES") == "1":
        raise RuntimeError(f"PLUGGABLY_TEST_REQUIRE_POSTGRES=1 but {PG_URL_ENV} is not set")
    pytest.skip(f"{PG_URL_ENV} not set: replicas need PostgreSQL")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    import asyncpg  # type: ignore[import-untyped]

    base = postgres_url()
    name = f"pluggably_cluster_{secrets.token_hex(6)}"
    server = base.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    async def drop() -> None:
        admin = await asyncpg.connect(server)
        try:
            await _drop_database(admin, name)
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(drop())


def log_events(log_path: Path, event: str) -> list[dict[str, Any]]:
    """The JSON lines of ``event`` a server has written to ``log_path`` so far."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("event") == event:
            found.append(parsed)
    return found


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``event`` written so far."""
        return log_events(self.log_path, event)

    def replica_id(self) -> str:
        """The id this replica took in the cluster (its ``replica_joined`` line)."""
        return str(self.log_events("replica_joined")[-1]["replica"])

    def kill(self) -> None:
        """``kill -9``: no shutdown work runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def replica_env(root: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    env.update(
        PLUGGABLY_DATABASE_URL=database_url,
        PLUGGABLY_DATA_DIR=str(root / "data"),
        PLUGGABLY_SECRET_KEY_FILE=str(root / "config" / "secret.key"),
        PLUGGABLY_ADMIN_KEY=ADMIN_KEY,
        PLUGGABLY_BUNDLED_MODEL="false",
        PLUGGABLY_PRELOAD_DEFAULTS="false",
        **extra,
    )
    return env


def start_replica(
    root: Path, name: str, database_url: str, *, port: int | None = None, **env: str
) -> Replica:
    """One ``pluggably serve`` on ``database_url``, ready when this returns."""
    port = port or unused_port()
    log_path = root / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)],
            env=replica_env(root, database_url, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _wait_ready(f"http://127.0.0.1:{port}", proc, log_path, timeout_s=60)
    return Replica(name, port, proc, log_path)


@contextmanager
def replicas(root: Path, count: int = 2, **env: str) -> Iterator[list[Replica]]:
    """``count`` replicas on one fresh database, started one after the other (the
    first creates the schema and the key), stopped at the end."""
    started: list[Replica] = []
    with fresh_database() as url:
        try:
            for index in range(count):
                started.append(start_replica(root, "ABCDEFGH"[index], url, **env))
            yield started
        finally:
            for replica in started:
                replica.stop()
