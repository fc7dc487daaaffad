"""Issue #15: answers that carry secrets are not cached, and every answer carries the
usual hardening headers, without breaking /docs or artifact caching."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_KEY, PASSWORD, register

HARDENING = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
SECRET_BEARING = {**HARDENING, "cache-control": "no-store"}


def assert_headers(response: httpx.Response, expected: dict[str, str]) -> None:
    for name, value in expected.items():
        assert response.headers.get_list(name) == [value], (name, response.headers)
    assert "content-security-policy" not in response.headers
    assert response.headers["x-request-id"]


async def test_login_token_invite_and_registration_answers_are_not_stored(
    client: httpx.AsyncClient,
) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    invite = await client.post("/v1/users/invites", json={}, headers=admin)
    assert invite.status_code == 201
    assert_headers(invite, SECRET_BEARING)
    registered = await register(client, "alice")
    assert registered.status_code == 201
    assert_headers(registered, SECRET_BEARING)
    login = await client.post("/v1/users/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200
    assert_headers(login, SECRET_BEARING)
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    token = await client.post("/v1/users/tokens", json={"name": "ci"}, headers=bearer)
    assert token.status_code == 201
    assert_headers(token, SECRET_BEARING)
    refused = await client.post("/v1/users/login", json={"username": "alice", "password": "x"})
    assert refused.status_code == 401
    assert_headers(refused, SECRET_BEARING)


async def test_docs_still_load_with_the_hardening_headers(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    assert_headers(docs, HARDENING)
    assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/nope"])
async def test_plain_answers_carry_them_too(client: httpx.AsyncClient, path: str) -> None:
    assert_headers(await client.get(path), SECRET_BEARING)
