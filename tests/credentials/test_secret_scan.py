"""After storing provider keys and tokens through a real server process, no
plaintext secret is in the database files, the logs, or any response other than
the one response that hands a new secret out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.fixtures.openai_sim import OpenAISim
from tests.serving.test_serve import start_server, stop_server

pytestmark = pytest.mark.slow

PASSWORD = "my-long-secret-password-42"
NEW_PASSWORD = "an-even-longer-new-password-43"
PROVIDER_SECRETS = {
    "openai": "sk-proj-PLAINTEXTOPENAI0000000001",
    "azure": "AZUREPLAINTEXT00000000000002",
    "google_private_key": "MIIEvPLAINTEXTGOOGLEPRIVATEKEY0003",
}


def test_no_plaintext_secret_anywhere(tmp_path: Path, free_port: int) -> None:
    proc, log_path = start_server(tmp_path, free_port, PLUGGABLY_LOG_LEVEL="debug")
    base = f"http://127.0.0.1:{free_port}"
    handed_out: dict[str, str] = {}  # secret -> the one response allowed to contain it
    responses: list[tuple[str, str]] = []

    def call(c: httpx.Client, method: str, path: str, **kw: object) -> httpx.Response:
        r = c.request(method, path, **kw)  # type: ignore[arg-type]
        responses.append((f"{method} {path}", r.text))
        return r

    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            admin = {"X-API-Key": ADMIN_KEY}
            invite = call(c, "POST", "/v1/users/invites", json={}, headers=admin).json()["token"]
            handed_out[invite] = "POST /v1/users/invites"
            body = {"username": "sam", "password": PASSWORD, "invite_token": invite}
            assert call(c, "POST", "/v1/users/register", json=body).status_code == 201
            bad = {"username": "sam", "password": PASSWORD + "x"}
            assert call(c, "POST", "/v1/users/login", json=bad).status_code == 401
            login = call(
                c, "POST", "/v1/users/login", json={"username": "sam", "password": PASSWORD}
            )
            session_token = login.json()["token"]
            handed_out[session_token] = "POST /v1/users/login"
            auth = {"Authorization": f"Bearer {session_token}"}
            made = call(c, "POST", "/v1/users/tokens", json={"name": "cli"}, headers=auth)
            api_token = made.json()["token"]
            handed_out[api_token] = "POST /v1/users/tokens"
            api = {"X-API-Key": api_token}
            keys = [
                {"provider": "openai", "api_key": PROVIDER_SECRETS["openai"]},
                {
                    "provider": "azure",
                    "credential_type": "endpoint_key",
                    "api_key": PROVIDER_SECRETS["azure"],
                    "endpoint": "https://res.openai.azure.com",
                },
                {
                    "provider": "google",
                    "credential_type": "service_account",
                    "service_account_json": json.dumps(
                        {
                            "type": "service_account",
                            "project_id": "p",
                            "private_key_id": "abcdef0123456789",
                            "private_key": "-----BEGIN PRIVATE KEY-----\n"
                            + PROVIDER_SECRETS["google_private_key"]
                            + "\n-----END PRIVATE KEY-----\n",
                            "client_email": "x@p.iam.gserviceaccount.com",
                        }
                    ),
                },
                # Refused, with a secret in the body: the error must not echo it.
                {"provider": "nowhere", "api_key": PROVIDER_SECRETS["openai"] + "Z"},
            ]
            for key in keys:
                call(c, "POST", "/v1/users/provider-keys", json=key, headers=api)
            call(c, "GET", "/v1/users/provider-keys", headers=api)
            call(c, "GET", "/v1/users/tokens", headers=api)
            call(c, "GET", "/v1/users/me", headers=api)
            call(c, "GET", "/v1/users/invites", headers=admin)
            call(c, "GET", "/metrics", headers=admin)
            pw = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
            assert (
                call(c, "POST", "/v1/users/change-password", json=pw, headers=auth).status_code
                == 200
            )
            call(c, "GET", "/v1/users/me", headers={"X-API-Key": api_token + "x"})
            call(c, "POST", "/v1/users/logout", headers=auth)
    finally:
        logs = stop_server(proc, log_path)

    never_shown = [PASSWORD, NEW_PASSWORD, ADMIN_KEY, *PROVIDER_SECRETS.values()]
    for where, text in responses:
        for secret in never_shown:
            assert secret not in text, (secret, where)
        for secret, allowed in handed_out.items():
            if where != allowed:
                assert secret not in text, (where, allowed)
    everything = [*never_shown, *handed_out]
    for secret in everything:
        assert secret not in logs
    db_files = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("pluggably.db")]
    assert db_files
    for path in db_files:
        raw = path.read_bytes()
        for secret in everything:
            assert secret.encode() not in raw, (secret, path.name)
    assert os.stat(tmp_path / "data").st_mode & 0o077 == 0


USER_OPENAI_KEY = "sk-proj-USEROPENAIPLAINTEXT00000000000004"
SERVER_OPENAI_KEY = "sk-SERVEROPENAIPLAINTEXT0000000000005"


def test_no_secret_on_generation_sessions_requests_and_compat_routes(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    """The routes added after the users work (sessions, generation, request records,
    residency, the OpenAI and Anthropic surfaces, metrics) under every credential kind,
    with an upstream that echoes the caller's key in its errors: no secret in any
    response, the logs or the database."""
    proc, log_path = start_server(
        tmp_path,
        free_port,
        PLUGGABLY_LOG_LEVEL="debug",
        PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=openai_sim.base_url,
        PLUGGABLY_PROVIDERS__OPENAI__API_KEY=SERVER_OPENAI_KEY,
        PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
    )
    base = f"http://127.0.0.1:{free_port}"
    handed_out: dict[str, str] = {}
    responses: list[tuple[str, str]] = []

    def call(c: httpx.Client, method: str, path: str, **kw: object) -> httpx.Response:
        r = c.request(method, path, **kw)  # type: ignore[arg-type]
        responses.append((f"{method} {path}", r.text))
        assert r.status_code < 500 or r.status_code in {502, 503}, (method, path, r.text)
        return r

    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            admin = {"X-API-Key": ADMIN_KEY}
            invite = call(c, "POST", "/v1/users/invites", json={}, headers=admin).json()["token"]
            handed_out[invite] = "POST /v1/users/invites"
            body = {"username": "gen", "password": PASSWORD, "invite_token": invite}
            assert call(c, "POST", "/v1/users/register", json=body).status_code == 201
            login = call(
                c, "POST", "/v1/users/login", json={"username": "gen", "password": PASSWORD}
            )
            jwt = login.json()["token"]
            handed_out[jwt] = "POST /v1/users/login"
            bearer = {"Authorization": f"Bearer {jwt}"}
            made = call(c, "POST", "/v1/users/tokens", json={"name": "cli"}, headers=bearer)
            api_token = made.json()["token"]
            handed_out[api_token] = "POST /v1/users/tokens"
            key = {"provider": "openai", "api_key": USER_OPENAI_KEY}
            assert (
                call(c, "POST", "/v1/users/provider-keys", json=key, headers=bearer).status_code
                == 201
            )
            callers = {
                "api token": {"X-API-Key": api_token},
                "login jwt": bearer,
                "admin key": {"Authorization": f"Bearer {ADMIN_KEY}"},
            }
            gen = {"model": "openai:gpt-4o-mini", "input": {"prompt": "hello"}, "wait": True}
            chat = {"model": "openai:gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            for who, auth in callers.items():
                sent_key = SERVER_OPENAI_KEY if who == "admin key" else USER_OPENAI_KEY
                sid = call(c, "POST", "/v1/sessions", json={}, headers=auth).json()["id"]
                done = call(c, "POST", f"/v1/sessions/{sid}/generate", json=gen, headers=auth)
                rid = done.json()["request_id"]
                call(
                    c,
                    "POST",
                    f"/v1/sessions/{sid}/generate",
                    json={**gen, "stream": True},
                    headers=auth,
                )
                call(c, "POST", f"/v1/sessions/{sid}/regenerate", json={"wait": True}, headers=auth)
                call(c, "GET", f"/v1/sessions/{sid}", headers=auth)
                call(c, "GET", "/v1/sessions", headers=auth)
                call(c, "POST", f"/v1/sessions/{sid}/reset", headers=auth)
                call(c, "POST", "/v1/generate", json={**gen, "stream": True}, headers=auth)
                for suffix in ("", "/status", "/events"):
                    call(c, "GET", f"/v1/requests/{rid}{suffix}", headers=auth)
                call(c, "POST", f"/v1/requests/{rid}/cancel", headers=auth)
                call(c, "POST", "/openai/v1/chat/completions", json=chat, headers=auth)
                call(
                    c,
                    "POST",
                    "/openai/v1/chat/completions",
                    json={**chat, "stream": True},
                    headers=auth,
                )
                call(
                    c,
                    "POST",
                    "/openai/v1/completions",
                    json={"model": "openai:gpt-4o-mini", "prompt": "x"},
                    headers=auth,
                )
                call(c, "GET", "/openai/v1/models", headers=auth)
                msg = {**chat, "max_tokens": 16}
                call(c, "POST", "/anthropic/v1/messages", json=msg, headers=auth)
                call(
                    c, "POST", "/anthropic/v1/messages", json={**msg, "stream": True}, headers=auth
                )
                for path in ("/v1/models", "/v1/providers", "/v1/models/loaded", "/v1/features"):
                    call(c, "GET", path, headers=auth)
                # An upstream that echoes the key it was sent, in every failure kind.
                for status in (401, 400, 429, 500):
                    echo = {"error": {"message": f"Incorrect API key: {sent_key}", "type": "x"}}
                    openai_sim.fail_next(
                        status=status, body=echo, retry_after=0 if status == 429 else None
                    )
                    call(c, "POST", "/v1/generate", json=gen, headers=auth)
                    openai_sim.fail_next(
                        status=status, body=echo, retry_after=0 if status == 429 else None
                    )
                    call(c, "POST", "/openai/v1/chat/completions", json=chat, headers=auth)
                    openai_sim.fail_next(
                        status=status, body=echo, retry_after=0 if status == 429 else None
                    )
                    call(c, "POST", "/anthropic/v1/messages", json=msg, headers=auth)
            # Wrong credentials on the newer surfaces: never echoed back.
            for wrong in (api_token + "x", jwt[:-2] + "xx", ADMIN_KEY + "x"):
                for path in ("/v1/sessions", "/openai/v1/models"):
                    call(c, "GET", path, headers={"Authorization": f"Bearer {wrong}"})
                call(c, "POST", "/anthropic/v1/messages", json=chat, headers={"x-api-key": wrong})
            call(c, "GET", "/metrics", headers=admin)
            call(c, "GET", "/v1/jobs", headers=admin)
    finally:
        logs = stop_server(proc, log_path)

    sent = {r.headers.get("authorization", "") for r in openai_sim.requests}
    assert f"Bearer {USER_OPENAI_KEY}" in sent  # the user's own key really was in play
    assert f"Bearer {SERVER_OPENAI_KEY}" in sent  # and the server key, for the admin
    never_shown = [PASSWORD, ADMIN_KEY, USER_OPENAI_KEY, SERVER_OPENAI_KEY]
    for where, text in responses:
        for secret in never_shown:
            assert secret not in text, (secret, where)
        for secret, allowed in handed_out.items():
            if where != allowed:
                assert secret not in text, (where, allowed)
    everything = [*never_shown, *handed_out]
    for secret in everything:
        assert secret not in logs, secret
    for db_file in (tmp_path / "data").iterdir():
        if db_file.name.startswith("pluggably.db"):
            raw = db_file.read_bytes()
            for secret in everything:
                assert secret.encode() not in raw, (secret, db_file.name)
