"""Registration with invites, login/logout, password changes and profiles (API.md §6)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from pluggably.app import create_app
from pluggably.db import utcnow
from pluggably.users.models import Invite
from tests.conftest import (
    ADMIN_KEY,
    PASSWORD,
    assert_envelope,
    client_for,
    invite,
    login,
    make_settings,
    new_user,
    register,
    running,
)

ADMIN = {"X-API-Key": ADMIN_KEY}


async def test_register_login_token_provider_key_logout_flow(client: httpx.AsyncClient) -> None:
    created = await register(client, "Alice", display_name="Alice A.")
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["username"] == "alice"
    assert profile["role"] == "user"
    assert "password" not in created.text
    assert "password_hash" not in profile

    response = await client.post(
        "/v1/users/login", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == profile["id"]
    assert body["expires_at"].endswith(("Z", "+00:00"))
    session = {"Authorization": f"Bearer {body['token']}"}
    assert (await client.get("/v1/users/me", headers=session)).json()["id"] == profile["id"]

    made = await client.post("/v1/users/tokens", json={"name": "laptop"}, headers=session)
    assert made.status_code == 201
    secret = made.json()["token"]
    assert secret.startswith("plg_")
    assert made.json()["info"]["scopes"] == ["read", "write"]
    api = {"X-API-Key": secret}
    assert (await client.get("/v1/users/me", headers=api)).json()["id"] == profile["id"]
    listed = (await client.get("/v1/users/tokens", headers=api)).json()
    assert [t["name"] for t in listed] == ["laptop"]
    assert secret not in str(listed)
    assert secret.startswith(listed[0]["prefix"])

    key = await client.post(
        "/v1/users/provider-keys",
        json={"provider": "openai", "api_key": "sk-test-abcdefghijklmnop1234"},
        headers=api,
    )
    assert key.status_code == 201, key.text
    assert key.json()["masked_key"] == "sk-…1234"

    out = await client.post("/v1/users/logout", headers=session)
    assert out.status_code == 200
    assert out.json() == {"status": "logged_out"}
    revoked = await client.get("/v1/users/me", headers=session)
    assert_envelope(revoked, 401, "unauthorized")
    assert "revoked" in revoked.json()["detail"]["message"]
    # Logout revoked that login only; the API token lives on until revoked itself.
    assert (await client.get("/v1/users/me", headers=api)).status_code == 200
    token_id = listed[0]["id"]
    assert (await client.delete(f"/v1/users/tokens/{token_id}", headers=api)).status_code == 200
    assert_envelope(await client.get("/v1/users/me", headers=api), 401, "unauthorized")


async def test_registration_needs_an_invite(client: httpx.AsyncClient) -> None:
    body = {"username": "nobody", "password": PASSWORD}
    assert_envelope(await client.post("/v1/users/register", json=body), 400, "invalid_invite")
    bogus = await client.post("/v1/users/register", json={**body, "invite_token": "inv_nope"})
    detail = assert_envelope(bogus, 400, "invalid_invite")
    assert detail["message"] == "This invite is not valid."


async def test_invite_is_single_use(client: httpx.AsyncClient) -> None:
    token = await invite(client)
    assert (await register(client, "first", invite_token=token)).status_code == 201
    again = await register(client, "second", invite_token=token)
    detail = assert_envelope(again, 400, "invalid_invite")
    assert "used" in detail["message"]
    # The failed registration left no account behind.
    failed = await client.post("/v1/users/login", json={"username": "second", "password": PASSWORD})
    assert failed.status_code == 401


async def test_expired_and_revoked_invites(app: FastAPI, client: httpx.AsyncClient) -> None:
    expired = await invite(client, expires_days=1)
    async with app.state.container.db.session() as session:
        await session.execute(update(Invite).values(expires_at=utcnow() - timedelta(seconds=1)))
    detail = assert_envelope(
        await register(client, "late", invite_token=expired), 400, "invalid_invite"
    )
    assert "expired" in detail["message"]

    revoked = await client.post("/v1/users/invites", json={}, headers=ADMIN)
    invite_id = revoked.json()["info"]["id"]
    assert (await client.delete(f"/v1/users/invites/{invite_id}", headers=ADMIN)).status_code == 204
    detail = assert_envelope(
        await register(client, "late2", invite_token=revoked.json()["token"]), 400, "invalid_invite"
    )
    assert "revoked" in detail["message"]
    statuses = {
        i["id"]: i["status"]
        for i in (await client.get("/v1/users/invites", headers=ADMIN)).json()["invites"]
    }
    assert statuses[invite_id] == "revoked"
    assert "expired" in statuses.values()
    assert "token" not in str(statuses)


async def test_invite_bound_to_an_email(client: httpx.AsyncClient) -> None:
    token = await invite(client, email="Carol@Example.org")
    wrong = await client.post(
        "/v1/users/register",
        json={"email": "mallory@example.org", "password": PASSWORD, "invite_token": token},
    )
    assert_envelope(wrong, 400, "invalid_invite")
    right = await client.post(
        "/v1/users/register",
        json={"email": "carol@example.org", "password": PASSWORD, "invite_token": token},
    )
    assert right.status_code == 201
    assert right.json()["email"] == "carol@example.org"
    assert (await login(client, "CAROL@example.org")).startswith("eyJ")


async def test_open_registration(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, registration_open=True))
    async with running(app), client_for(app) as client:
        response = await client.post(
            "/v1/users/register", json={"username": "walkin", "password": PASSWORD}
        )
        assert response.status_code == 201


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 10 characters"),
        ("dave-the-user", "must not be your username"),
        ("aaaaaaaaaaaa", "too repetitive"),
    ],
)
async def test_weak_passwords_are_refused(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    response = await register(client, "dave-the-user", password=password)
    detail = assert_envelope(response, 422, "validation_error")
    assert reason in detail["message"]
    assert detail["details"][0]["loc"] == ["body", "password"]
    assert password not in response.text


async def test_duplicate_and_reserved_usernames(client: httpx.AsyncClient) -> None:
    assert (await register(client, "erin")).status_code == 201
    assert_envelope(await register(client, "ERIN"), 409, "conflict")
    assert_envelope(await register(client, "admin"), 409, "conflict")
    invalid = await register(client, "no spaces please")
    assert invalid.json()["detail"]["details"][0]["loc"] == ["body", "username"]


async def test_wrong_password_then_throttled(client: httpx.AsyncClient) -> None:
    await new_user(client, "frank")
    wrong = {"username": "frank", "password": "not-the-password"}
    for _ in range(5):
        detail = assert_envelope(
            await client.post("/v1/users/login", json=wrong), 401, "unauthorized"
        )
        assert detail["message"] == "Wrong username, email or password."
    blocked = await client.post("/v1/users/login", json={"username": "frank", "password": PASSWORD})
    detail = assert_envelope(blocked, 429, "rate_limited")
    assert 1 <= detail["retry_after"] <= 900
    assert blocked.headers["retry-after"] == str(detail["retry_after"])


async def test_unknown_account_answers_like_a_wrong_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/users/login", json={"username": "ghost", "password": PASSWORD}
    )
    detail = assert_envelope(response, 401, "unauthorized")
    assert detail["message"] == "Wrong username, email or password."


async def test_throttled_per_client_address(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url, login_max_failures=100, login_max_failures_per_address=3
    )
    app = create_app(settings)
    async with running(app):
        async with client_for(app, client_host="10.1.1.1") as attacker:
            for name in ("u1", "u2", "u3"):
                bad = {"username": name, "password": "guess-guess-guess"}
                assert (await attacker.post("/v1/users/login", json=bad)).status_code == 401
            bad = {"username": "u4", "password": "guess-guess-guess"}
            assert_envelope(await attacker.post("/v1/users/login", json=bad), 429, "rate_limited")
        async with client_for(app, client_host="10.2.2.2") as other:
            bad = {"username": "u4", "password": "guess-guess-guess"}
            assert (await other.post("/v1/users/login", json=bad)).status_code == 401


async def test_change_password_revokes_other_logins(client: httpx.AsyncClient) -> None:
    first = await new_user(client, "grace")
    second = {"Authorization": f"Bearer {await login(client, 'grace')}"}
    api = (await client.post("/v1/users/tokens", json={"name": "ci"}, headers=first)).json()[
        "token"
    ]
    wrong = await client.post(
        "/v1/users/change-password",
        json={"current_password": "not-it-at-all", "new_password": "a-brand-new-secret"},
        headers=first,
    )
    # 400, not 401: the credential is valid, and clients log out on a 401.
    assert_envelope(wrong, 400, "invalid_parameter")
    weak = await client.post(
        "/v1/users/change-password",
        json={"current_password": PASSWORD, "new_password": "grace"},
        headers=first,
    )
    assert_envelope(weak, 422, "validation_error")
    changed = await client.post(
        "/v1/users/change-password",
        json={"current_password": PASSWORD, "new_password": "a-brand-new-secret"},
        headers=first,
    )
    assert changed.status_code == 200
    assert (await client.get("/v1/users/me", headers=first)).status_code == 200
    stale = await client.get("/v1/users/me", headers=second)
    assert_envelope(stale, 401, "unauthorized")
    assert (await client.get("/v1/users/me", headers={"X-API-Key": api})).status_code == 200
    old = await client.post("/v1/users/login", json={"username": "grace", "password": PASSWORD})
    assert old.status_code == 401
    fresh = {"Authorization": f"Bearer {await login(client, 'grace', 'a-brand-new-secret')}"}
    assert (await client.get("/v1/users/me", headers=fresh)).status_code == 200


async def test_profile_update_returns_what_was_stored(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "heidi")
    patch = {
        "display_name": "Heidi",
        "preferred_model": "openai:gpt-4o-mini",
        "preferences": {"theme": "dark", "temperature": 0.3},
    }
    response = await client.patch("/v1/users/me", json=patch, headers=auth)
    assert response.status_code == 200
    assert {k: response.json()[k] for k in patch} == patch
    assert (await client.get("/v1/users/me", headers=auth)).json()["display_name"] == "Heidi"
    partial = await client.patch("/v1/users/me", json={"display_name": "H."}, headers=auth)
    assert partial.json()["preferred_model"] == "openai:gpt-4o-mini"
    bad = await client.patch("/v1/users/me", json={"preferred_model": "nope:thing"}, headers=auth)
    detail = assert_envelope(bad, 422, "validation_error")
    assert detail["details"][0]["loc"] == ["body", "preferred_model"]
    unknown = await client.patch("/v1/users/me", json={"role": "admin"}, headers=auth)
    assert_envelope(unknown, 422, "validation_error")
    assert (await client.get("/v1/users/me", headers=auth)).json()["role"] == "user"


async def test_logout_needs_a_login_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/users/logout", headers=ADMIN)
    assert_envelope(response, 400, "invalid_parameter")


async def test_expired_login_token(tmp_path: Path, database_url: str) -> None:
    import jwt

    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        auth = await new_user(client, "ivan")
        token = auth["Authorization"].split()[1]
        key = app.state.container.keyring.active
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["exp"] = claims["iat"] - 10
        forged_expired = jwt.encode(
            claims, key.derive("login-jwt-v1"), algorithm="HS256", headers={"kid": key.key_id}
        )
        response = await client.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {forged_expired}"}
        )
        detail = assert_envelope(response, 401, "unauthorized")
        assert "expired" in detail["message"]
        tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {tampered}"})
        assert_envelope(response, 401, "unauthorized")


async def test_expired_revocations_are_forgotten_at_startup(
    tmp_path: Path, database_url: str
) -> None:
    from sqlalchemy import func, select

    from pluggably.users.models import RevokedToken

    settings = make_settings(tmp_path, database_url)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        auth = await new_user(client, "leaving")
        assert (await client.post("/v1/users/logout", headers=auth)).status_code == 200
        async with app.state.container.db.session() as session:
            await session.execute(
                update(RevokedToken).values(expires_at=utcnow() - timedelta(seconds=1))
            )
    app = create_app(settings)
    async with running(app):
        async with app.state.container.db.session() as session:
            count = await session.scalar(select(func.count()).select_from(RevokedToken))
        assert count == 0
