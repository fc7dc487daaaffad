"""The single error envelope of API.md §2 for every kind of failure."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from pluggably.app import create_app
from pluggably.errors import Conflict, RateLimited
from tests.conftest import assert_envelope, client_for, make_settings, running

SECRET_IN_EXCEPTION = "sk-live-should-never-leak-123"


class Body(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=1)


def _probe_router() -> APIRouter:
    """Routes that fail on purpose, to exercise the handlers (added only in tests)."""
    router = APIRouter(prefix="/_probe")

    @router.post("/echo")
    async def echo(body: Body) -> Body:
        return body

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"database password is {SECRET_IN_EXCEPTION}")

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Username already taken.", details={"field": "username"})

    @router.get("/limited")
    async def limited() -> None:
        raise RateLimited("Slow down.", retry_after=7)

    return router


@pytest.fixture
async def probe_client(tmp_path: Path, database_url: str) -> httpx.AsyncClient:
    app: FastAPI = create_app(make_settings(tmp_path, database_url, max_body_bytes=2048))
    app.include_router(_probe_router())
    async with running(app), client_for(app) as client:
        yield client


async def test_unknown_route_is_404_envelope(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/v1/does-not-exist"), 404, "not_found")


async def test_wrong_method_is_405_envelope(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_405_allows_every_method_of_the_resource(client: httpx.AsyncClient) -> None:
    """FastAPI makes one route per method; the 405 names the resource's methods, not
    only those of the first route whose path matched (RFC 9110)."""
    response = await client.put("/v1/jobs/job_x")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET"
    # A fixed sub-route is its own resource, though /v1/models/{id} would match too.
    response = await client.put("/v1/models/org/m/load")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


async def test_malformed_json_is_400_invalid_json(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/_probe/echo", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    assert_envelope(response, 400, "invalid_json")


async def test_validation_lists_each_field(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/_probe/echo", json={"name": "", "count": 0})
    detail = assert_envelope(response, 422, "validation_error")
    by_loc = {tuple(d["loc"]): d for d in detail["details"]}
    assert set(by_loc) == {("body", "name"), ("body", "count")}
    assert by_loc[("body", "count")]["type"] == "greater_than_equal"
    assert all(set(d) == {"loc", "msg", "type"} for d in detail["details"])
    assert "body.name" in detail["message"]


async def test_validation_never_echoes_input(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/_probe/echo", json={"name": "hunter2-password", "count": "many"}
    )
    assert_envelope(response, 422, "validation_error")
    assert "hunter2" not in response.text


async def test_unexpected_exception_is_500_without_internals(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.get("/_probe/boom", headers={"X-Request-ID": "trace-500"})
    detail = assert_envelope(response, 500, "internal_error")
    assert detail["request_id"] == "trace-500"
    assert SECRET_IN_EXCEPTION not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_domain_error_carries_details(probe_client: httpx.AsyncClient) -> None:
    detail = assert_envelope(await probe_client.get("/_probe/conflict"), 409, "conflict")
    assert detail["details"] == {"field": "username"}
    assert detail["message"] == "Username already taken."


async def test_retry_after_in_body_and_header(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/_probe/limited")
    detail = assert_envelope(response, 429, "rate_limited")
    assert detail["retry_after"] == 7
    assert response.headers["retry-after"] == "7"


async def test_declared_oversized_body_is_413(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/_probe/echo", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert_envelope(response, 413, "payload_too_large")


async def test_streamed_oversized_body_is_413(probe_client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(8):
            yield b" " * 1024

    response = await probe_client.post(
        "/_probe/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "payload_too_large")


async def test_body_under_the_limit_passes(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/_probe/echo", json={"name": "a", "count": 2})
    assert response.status_code == 200
    assert response.json() == {"name": "a", "count": 2}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/x%00y", None),
        ("/v1/schema?model=%00", None),
        ("/_probe/echo", b'{"name": "a\\u0000b", "count": 1}'),
    ],
)
async def test_nul_characters_are_refused(
    probe_client: httpx.AsyncClient, path: str, body: bytes | None
) -> None:
    headers = {"X-API-Key": "test-admin-key-0123456789", "content-type": "application/json"}
    method = "POST" if body else "GET"
    response = await probe_client.request(method, path, content=body, headers=headers)
    detail = assert_envelope(response, 422, "validation_error")
    assert "NUL" in detail["message"]
