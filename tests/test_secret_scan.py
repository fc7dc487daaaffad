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
from tests.test_serve import start_server, stop_server

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
