"""API tokens: scopes on every route, expiry, revocation, last_used_at."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from pluggably.db import utcnow
from pluggably.users.models import ApiToken
from tests.conftest import ADMIN_KEY, assert_envelope, new_user

ADMIN = {"X-API-Key": ADMIN_KEY}


async def _token(client: httpx.AsyncClient, auth: dict[str, str], **body: object) -> str:
    response = await client.post("/v1/users/tokens", json={"name": "t", **body}, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def test_read_scope_cannot_write(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "reader")
    read = {"X-API-Key": await _token(client, auth, scopes=["read"])}
    assert (await client.get("/v1/users/me", headers=read)).status_code == 200
    assert (await client.get("/v1/users/tokens", headers=read)).status_code == 200
    denied = await client.patch("/v1/users/me", json={"display_name": "x"}, headers=read)
    detail = assert_envelope(denied, 403, "forbidden")
    assert "'write' scope" in detail["message"]
    assert_envelope(
        await client.post("/v1/users/tokens", json={"name": "escalate"}, headers=read),
        403,
        "forbidden",
    )
    assert_envelope(
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "groq", "api_key": "gsk_abcdefghijkl"},
            headers=read,
        ),
        403,
        "forbidden",
    )


async def test_write_scope_implies_read(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "writer")
    write = {"X-API-Key": await _token(client, auth, scopes=["write"])}
    assert (await client.get("/v1/users/me", headers=write)).status_code == 200
    assert (await client.patch("/v1/users/me", json={}, headers=write)).status_code == 200


async def test_users_cannot_reach_admin_routes(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "plain")
    for method, path in [
        ("POST", "/v1/users/invites"),
        ("GET", "/v1/users/invites"),
        ("DELETE", "/v1/users/invites/inv_x"),
        ("GET", "/metrics"),
    ]:
        response = await client.request(method, path, json={}, headers=auth)
        assert_envelope(response, 403, "forbidden")
    response = await client.post(
        "/v1/users/tokens", json={"name": "x", "scopes": ["admin"]}, headers=auth
    )
    assert_envelope(response, 403, "forbidden")


async def test_admin_token_without_admin_scope_is_not_admin(client: httpx.AsyncClient) -> None:
    scoped = {"X-API-Key": await _token(client, ADMIN, scopes=["read", "write"])}
    assert_envelope(await client.get("/v1/users/invites", headers=scoped), 403, "forbidden")
    full = {"X-API-Key": await _token(client, ADMIN, scopes=["admin"])}
    assert (await client.get("/v1/users/invites", headers=full)).status_code == 200


async def test_expired_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "ephemeral")
    made = await client.post(
        "/v1/users/tokens", json={"name": "day", "expires_days": 1}, headers=auth
    )
    info = made.json()["info"]
    assert info["expires_at"] is not None
    api = {"X-API-Key": made.json()["token"]}
    assert (await client.get("/v1/users/me", headers=api)).status_code == 200
    async with app.state.container.db.session() as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == info["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    detail = assert_envelope(await client.get("/v1/users/me", headers=api), 401, "unauthorized")
    assert "expired" in detail["message"]


@pytest.mark.parametrize("bad", ["plg_" + "x" * 43, "plg_", "plg_short"])
async def test_unknown_tokens(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/v1/users/me", headers={"X-API-Key": bad})
    assert_envelope(response, 401, "unauthorized")


async def test_last_used_at_without_a_write_per_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    auth = await new_user(client, "busy")
    secret = await _token(client, auth)
    listed = (await client.get("/v1/users/tokens", headers=auth)).json()
    assert listed[0]["last_used_at"] is None
    api = {"X-API-Key": secret}
    await client.get("/v1/users/me", headers=api)

    async def last_used() -> object:
        async with app.state.container.db.session() as session:
            return await session.scalar(select(ApiToken.last_used_at))

    first = await last_used()
    assert first is not None
    for _ in range(5):
        await client.get("/v1/users/me", headers=api)
    assert await last_used() == first  # unchanged within the resolution window
    async with app.state.container.db.session() as session:
        await session.execute(update(ApiToken).values(last_used_at=utcnow() - timedelta(hours=1)))
    await client.get("/v1/users/me", headers=api)
    later = await last_used()
    assert isinstance(later, type(first))
    assert later > utcnow() - timedelta(minutes=1)


async def test_revocation_is_immediate(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "revoker")
    secret = await _token(client, auth)
    token_id = (await client.get("/v1/users/tokens", headers=auth)).json()[0]["id"]
    assert (await client.delete(f"/v1/users/tokens/{token_id}", headers=auth)).status_code == 200
    detail = assert_envelope(
        await client.get("/v1/users/me", headers={"X-API-Key": secret}), 401, "unauthorized"
    )
    assert "revoked" in detail["message"]
    assert (await client.get("/v1/users/tokens", headers=auth)).json() == []
    again = await client.delete(f"/v1/users/tokens/{token_id}", headers=auth)
    assert_envelope(again, 404, "not_found")
