"""Auth core: credentials from either header, the bootstrap admin row, 401/403,
local-only mode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, running


async def test_missing_credential_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/me")
    assert_envelope(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="pluggably"'


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "wrong-key-wrong-key"},
        {"Authorization": f"Bearer {ADMIN_KEY}x"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": "Bearer "},
        {"X-API-Key": ADMIN_KEY[:-1]},
    ],
)
async def test_invalid_credentials_are_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/v1/users/me", headers=headers)
    assert_envelope(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": ADMIN_KEY}, {"Authorization": f"Bearer {ADMIN_KEY}"}, {"x-api-key": ADMIN_KEY}],
)
async def test_admin_key_acts_as_the_admin_user_row(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/v1/users/me", headers=headers)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["role"] == "admin"
    assert me["username"] == "admin"
    assert me["id"].startswith("usr_")
    assert me["created_at"].endswith("Z") or me["created_at"].endswith("+00:00")


async def test_admin_row_is_stable_across_restarts(tmp_path: Path, database_url: str) -> None:
    ids = []
    for _ in range(2):
        app = create_app(make_settings(tmp_path, database_url))
        async with running(app), client_for(app) as client:
            response = await client.get("/v1/users/me", headers={"X-API-Key": ADMIN_KEY})
            ids.append(response.json()["id"])
    assert ids[0] == ids[1]


async def test_no_admin_key_configured_means_no_key_works(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(make_settings(tmp_path, database_url, admin_key=None))
    async with running(app), client_for(app) as client:
        response = await client.get("/v1/users/me", headers={"X-API-Key": ""})
        assert_envelope(response, 401, "unauthorized")


async def test_metrics_are_admin_only_by_default(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/metrics"), 401, "unauthorized")
    response = await client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def test_metrics_can_be_public(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, metrics_public=True))
    async with running(app), client_for(app) as client:
        assert (await client.get("/metrics")).status_code == 200


async def test_local_only_lets_loopback_callers_act_as_admin(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(make_settings(tmp_path, database_url, local_only=True, admin_key=None))
    async with running(app):
        async with client_for(app, base_url="http://127.0.0.1:8080") as local:
            response = await local.get("/v1/users/me")
            assert response.status_code == 200
            assert response.json()["role"] == "admin"
            # A wrong credential is still refused: local mode does not bypass checks.
            bad = await local.get("/v1/users/me", headers={"X-API-Key": "nope-nope-nope"})
            assert_envelope(bad, 401, "unauthorized")
            same_origin = {"Origin": "http://localhost:3000"}
            assert (await local.get("/v1/users/me", headers=same_origin)).status_code == 200
            # DNS rebinding: a page on another origin reaching us through 127.0.0.1.
            foreign = {"Origin": "http://evil.example"}
            assert_envelope(await local.get("/v1/users/me", headers=foreign), 401, "unauthorized")
        async with client_for(app, client_host="::1", base_url="http://[::1]:8080") as local6:
            assert (await local6.get("/v1/users/me")).status_code == 200
        async with client_for(app, base_url="http://localhost") as by_name:
            assert (await by_name.get("/v1/users/me")).status_code == 200
        async with client_for(app, base_url="http://rebound.evil.example:8080") as rebound:
            assert_envelope(await rebound.get("/v1/users/me"), 401, "unauthorized")
        async with client_for(
            app, client_host="192.168.1.20", base_url="http://127.0.0.1:8080"
        ) as remote:
            assert_envelope(await remote.get("/v1/users/me"), 401, "unauthorized")


async def test_without_local_only_loopback_needs_a_credential(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/v1/users/me"), 401, "unauthorized")
