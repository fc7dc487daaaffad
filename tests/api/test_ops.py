"""/health, /ready, /version, /metrics and the request id."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from pluggably import __version__
from pluggably.db import Database
from tests.conftest import ADMIN_KEY, assert_envelope


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_not_ready_when_database_is_gone(app: FastAPI, client: httpx.AsyncClient) -> None:
    container = app.state.container
    healthy = container.db
    container.db = Database("postgresql+asyncpg://nobody:pw@127.0.0.1:9/none")
    try:
        response = await client.get("/ready")
        detail = assert_envelope(response, 503, "not_ready")
        assert detail["details"] == {"missing": ["database"]}
        assert response.headers["retry-after"] == "1"
        # Liveness does not touch the database.
        assert (await client.get("/health")).status_code == 200
    finally:
        await container.db.dispose()
        container.db = healthy


async def test_not_ready_while_startup_work_is_pending(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.readiness.expect("model_discovery")
    detail = assert_envelope(await client.get("/ready"), 503, "not_ready")
    assert detail["details"] == {"missing": ["model_discovery"]}
    app.state.readiness.done("model_discovery")
    assert (await client.get("/ready")).status_code == 200


async def test_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/version")
    assert response.json() == {"version": __version__}


async def test_request_id_is_generated(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


async def test_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": "abc-123:retry.2"})
    assert response.headers["x-request-id"] == "abc-123:retry.2"
    assert response.json()["detail"]["request_id"] == "abc-123:retry.2"


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not labels and line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if got == labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.get("/health")
    await client.get("/v1/users/me")
    await client.get("/random/path/1")
    await client.get("/random/path/2")
    text = (await client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})).text
    total = "pluggably_http_requests_total"
    assert _sample(text, total, method="GET", route="/health", status="200") == 3
    assert _sample(text, total, method="GET", route="/v1/users/me", status="401") == 1
    # Unknown paths share one label value: no cardinality explosion from scanners.
    assert _sample(text, total, method="GET", route="<unmatched>", status="404") == 2
    count = "pluggably_http_request_duration_seconds_count"
    assert _sample(text, count, method="GET", route="/health") == 3
    # The /metrics request itself is in flight while it renders.
    assert _sample(text, "pluggably_http_requests_in_flight") == 1
