"""Regressions for races and ordering: commits before responses, throttling under
concurrency, concurrent logouts, keys rotated under a running server."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from pluggably.app import create_app
from pluggably.auth.principal import ALL_SCOPES, Principal
from tests.conftest import PASSWORD, assert_envelope, client_for, make_settings, new_user, running
from tests.serving.test_serve import BIN


async def test_writes_commit_before_the_response_starts(app: FastAPI) -> None:
    order: list[str] = []
    event.listen(
        app.state.container.db.engine.sync_engine, "commit", lambda _c: order.append("commit")
    )

    async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
        async def spy(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                order.append("response")
            await send(message)

        await app(scope, receive, spy)

    transport = httpx.ASGITransport(app=recording, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = await new_user(client, "ordered")
        order.clear()
        response = await client.post("/v1/users/logout", headers=headers)
        assert response.status_code == 200
    # Every commit — the auth check's and the route's own — precedes the response.
    assert order[-1] == "response", order
    assert "commit" in order


async def test_concurrent_guesses_cannot_outrun_the_throttle(client: httpx.AsyncClient) -> None:
    await new_user(client, "target")
    wrong = {"username": "target", "password": "wrong-password-guess"}
    responses = await asyncio.gather(
        *(client.post("/v1/users/login", json=wrong) for _ in range(20))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(401) == 5  # the per-account budget
    assert codes.count(429) == 15


async def test_username_and_email_have_budgets_of_their_own(client: httpx.AsyncClient) -> None:
    """Throttled by the name as typed: a shared budget would tell a guesser, by a 429,
    that an address belongs to the account whose username it had throttled."""
    from tests.conftest import register

    await register(client, "two-names", email="two@example.org")
    bad = {"username": "two-names", "password": "not-the-password"}
    for _ in range(5):
        assert (await client.post("/v1/users/login", json=bad)).status_code == 401
    assert_envelope(await client.post("/v1/users/login", json=bad), 429, "rate_limited")
    by_email = await client.post(
        "/v1/users/login", json={"email": "two@example.org", "password": PASSWORD}
    )
    assert by_email.status_code == 200


async def test_password_change_guessing_is_throttled(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "guessed")
    body = {"current_password": "not-the-password", "new_password": "another-new-password"}
    for _ in range(5):
        wrong = await client.post("/v1/users/change-password", json=body, headers=auth)
        assert_envelope(wrong, 400, "invalid_parameter")
    right = {"current_password": PASSWORD, "new_password": "another-new-password"}
    blocked = await client.post("/v1/users/change-password", json=right, headers=auth)
    assert_envelope(blocked, 429, "rate_limited")


async def test_concurrent_logouts(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "leaver")
    responses = await asyncio.gather(
        *(client.post("/v1/users/logout", headers=auth) for _ in range(4))
    )
    # The first wins; the others find the token revoked already (401) — never a 500.
    assert sorted(r.status_code for r in responses)[0] == 200
    assert all(r.status_code in {200, 401} for r in responses)
    assert_envelope(await client.get("/v1/users/me", headers=auth), 401, "unauthorized")


async def test_empty_invite_with_open_registration(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, registration_open=True))
    async with running(app), client_for(app) as client:
        body = {"username": "walkin", "password": PASSWORD, "invite_token": ""}
        assert (await client.post("/v1/users/register", json=body)).status_code == 201


async def test_rotation_while_the_server_runs(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        auth = await new_user(client, "live")
        key = {"provider": "openai", "api_key": "sk-live-rotation-00000001"}
        await client.post("/v1/users/provider-keys", json=key, headers=auth)
        env = {
            "PATH": "/usr/bin:/bin",
            "PLUGGABLY_DATA_DIR": str(settings.data_dir),
            "PLUGGABLY_SECRET_KEY_FILE": str(settings.secret_key_file),
            "PLUGGABLY_DATABASE_URL": settings.resolved_database_url,
            "PLUGGABLY_BUNDLED_MODEL": "false",
        }
        result = await asyncio.to_thread(
            subprocess.run,
            [str(BIN), "secrets", "rotate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        container = app.state.container
        container.keyring._last_reload = 0.0  # don't wait out the reload interval
        me = (await client.get("/v1/users/me", headers=auth)).json()
        principal = Principal(user_id=me["id"], role="user", scopes=ALL_SCOPES, via="t")
        async with container.db.session() as session:
            payload = await container.credentials.resolve(session, principal, "live", "openai")
        assert payload == {"api_key": "sk-live-rotation-00000001"}
        assert len(container.keyring.keys) == 2
