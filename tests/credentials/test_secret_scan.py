"""After storing provider keys and tokens through a real server process, no
plaintext secret is in the database files, the logs, or any response other than
the one response that hands a new secret out.

Two walks, each through one server process run once for the module (a walk is
slow: a server start and dozens of calls): the users routes, and the routes added
after them (sessions, generation, request records, the OpenAI and Anthropic
surfaces, metrics) under every credential kind. Each test checks one place a
secret could leak, for both walks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, unused_port
from tests.fixtures.loopback import serving
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
USER_OPENAI_KEY = "sk-proj-USEROPENAIPLAINTEXT00000000000004"
SERVER_OPENAI_KEY = "sk-SERVEROPENAIPLAINTEXT0000000000005"
ADMIN = {"X-API-Key": ADMIN_KEY}


@dataclass
class Walk:
    """What a walk left behind: every response, the secrets it handed out (each
    with the one response allowed to contain it), the server's logs and data dir."""

    client: httpx.Client
    never_shown: list[str]
    no_server_errors: bool = False
    handed_out: dict[str, str] = field(default_factory=dict)
    responses: list[tuple[str, str]] = field(default_factory=list)
    logs: str = ""
    data_dir: Path = Path()

    def call(self, method: str, path: str, **kw: object) -> httpx.Response:
        r = self.client.request(method, path, **kw)  # type: ignore[arg-type]
        self.responses.append((f"{method} {path}", r.text))
        if self.no_server_errors:
            assert r.status_code < 500 or r.status_code in {502, 503}, (method, path, r.text)
        return r

    def hand_out(self, method: str, path: str, **kw: object) -> str:
        """Call a route that hands a new secret out; the secret."""
        secret = str(self.call(method, path, **kw).json()["token"])
        self.handed_out[secret] = f"{method} {path}"
        return secret

    @property
    def everything(self) -> list[str]:
        return [*self.never_shown, *self.handed_out]


def _signed_up(walk: Walk, username: str) -> tuple[dict[str, str], str]:
    """Invite, register and log in: the login's bearer headers and the user's API token."""
    invite = walk.hand_out("POST", "/v1/users/invites", json={}, headers=ADMIN)
    body = {"username": username, "password": PASSWORD, "invite_token": invite}
    assert walk.call("POST", "/v1/users/register", json=body).status_code == 201
    login = {"username": username, "password": PASSWORD}
    bearer = {"Authorization": f"Bearer {walk.hand_out('POST', '/v1/users/login', json=login)}"}
    api_token = walk.hand_out("POST", "/v1/users/tokens", json={"name": "cli"}, headers=bearer)
    return bearer, api_token


@pytest.fixture(scope="module")
def sim() -> Iterator[OpenAISim]:
    """An upstream for the generation walk (the module's own: the walk runs once)."""
    with serving(OpenAISim(), "the OpenAI simulator") as started:
        yield started


def _run(data: Path, sim: OpenAISim | None, steps: Callable[[Walk], None], *never: str) -> Walk:
    """Start a server in ``data`` (with ``sim`` as openai, if any), take ``steps``, stop it."""
    port = unused_port()
    env = {"PLUGGABLY_LOG_LEVEL": "debug"}
    if sim is not None:
        env |= {
            "PLUGGABLY_PROVIDERS__OPENAI__BASE_URL": sim.base_url,
            "PLUGGABLY_PROVIDERS__OPENAI__API_KEY": SERVER_OPENAI_KEY,
            "PLUGGABLY_SERVER_KEYS_ALLOWED": '["@admins"]',
        }
    proc, log_path = start_server(data, port, **env)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        walk = Walk(c, list(never), no_server_errors=sim is not None, data_dir=data / "data")
        try:
            steps(walk)
        finally:
            walk.logs = stop_server(proc, log_path)
    return walk


def _users_walk(walk: Walk) -> None:
    """The users routes: provider keys of each credential kind, tokens, a password change."""
    bearer, api_token = _signed_up(walk, "sam")
    bad = {"username": "sam", "password": PASSWORD + "x"}
    assert walk.call("POST", "/v1/users/login", json=bad).status_code == 401
    api = {"X-API-Key": api_token}
    for key in _PROVIDER_KEYS:
        walk.call("POST", "/v1/users/provider-keys", json=key, headers=api)
    walk.call("GET", "/v1/users/provider-keys", headers=api)
    walk.call("GET", "/v1/users/tokens", headers=api)
    walk.call("GET", "/v1/users/me", headers=api)
    walk.call("GET", "/v1/users/invites", headers=ADMIN)
    walk.call("GET", "/metrics", headers=ADMIN)
    pw = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = walk.call("POST", "/v1/users/change-password", json=pw, headers=bearer)
    assert changed.status_code == 200
    walk.call("GET", "/v1/users/me", headers={"X-API-Key": api_token + "x"})
    walk.call("POST", "/v1/users/logout", headers=bearer)


_PROVIDER_KEYS = [
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
GEN = {"model": "openai:gpt-4o-mini", "input": {"prompt": "hello"}, "wait": True}
CHAT = {"model": "openai:gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MSG = {**CHAT, "max_tokens": 16}


def _generation_walk(walk: Walk, sim: OpenAISim) -> None:
    """Every newer route under each credential kind, an upstream that echoes the key it
    was sent in each failure kind, and wrong credentials on the newer surfaces."""
    bearer, api_token = _signed_up(walk, "gen")
    key = {"provider": "openai", "api_key": USER_OPENAI_KEY}
    created = walk.call("POST", "/v1/users/provider-keys", json=key, headers=bearer)
    assert created.status_code == 201
    callers = {
        "api token": {"X-API-Key": api_token},
        "login jwt": bearer,
        "admin key": {"Authorization": f"Bearer {ADMIN_KEY}"},
    }
    for who, auth in callers.items():
        _newer_routes(walk, auth)
        _upstream_echoes_the_key(
            walk, sim, auth, SERVER_OPENAI_KEY if who == "admin key" else USER_OPENAI_KEY
        )
    jwt = bearer["Authorization"].removeprefix("Bearer ")
    for wrong in (api_token + "x", jwt[:-2] + "xx", ADMIN_KEY + "x"):
        for path in ("/v1/sessions", "/openai/v1/models"):
            walk.call("GET", path, headers={"Authorization": f"Bearer {wrong}"})
        walk.call("POST", "/anthropic/v1/messages", json=CHAT, headers={"x-api-key": wrong})
    walk.call("GET", "/metrics", headers=ADMIN)
    walk.call("GET", "/v1/jobs", headers=ADMIN)


def _newer_routes(walk: Walk, auth: dict[str, str]) -> None:
    """Sessions, generation, request records, both surfaces and the catalogue, as ``auth``."""
    call = walk.call
    sid = call("POST", "/v1/sessions", json={}, headers=auth).json()["id"]
    rid = call("POST", f"/v1/sessions/{sid}/generate", json=GEN, headers=auth).json()["request_id"]
    call("POST", f"/v1/sessions/{sid}/generate", json={**GEN, "stream": True}, headers=auth)
    call("POST", f"/v1/sessions/{sid}/regenerate", json={"wait": True}, headers=auth)
    call("GET", f"/v1/sessions/{sid}", headers=auth)
    call("GET", "/v1/sessions", headers=auth)
    call("POST", f"/v1/sessions/{sid}/reset", headers=auth)
    call("POST", "/v1/generate", json={**GEN, "stream": True}, headers=auth)
    for suffix in ("", "/status", "/events"):
        call("GET", f"/v1/requests/{rid}{suffix}", headers=auth)
    call("POST", f"/v1/requests/{rid}/cancel", headers=auth)
    call("POST", "/openai/v1/chat/completions", json=CHAT, headers=auth)
    call("POST", "/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    completion = {"model": "openai:gpt-4o-mini", "prompt": "x"}
    call("POST", "/openai/v1/completions", json=completion, headers=auth)
    call("GET", "/openai/v1/models", headers=auth)
    call("POST", "/anthropic/v1/messages", json=MSG, headers=auth)
    call("POST", "/anthropic/v1/messages", json={**MSG, "stream": True}, headers=auth)
    for path in ("/v1/models", "/v1/providers", "/v1/models/loaded", "/v1/features"):
        call("GET", path, headers=auth)


def _upstream_echoes_the_key(
    walk: Walk, sim: OpenAISim, auth: dict[str, str], sent_key: str
) -> None:
    """An upstream that echoes the key it was sent, in every failure kind, on each surface."""
    echo = {"error": {"message": f"Incorrect API key: {sent_key}", "type": "x"}}
    for status in (401, 400, 429, 500):
        for path, body in (
            ("/v1/generate", GEN),
            ("/openai/v1/chat/completions", CHAT),
            ("/anthropic/v1/messages", MSG),
        ):
            sim.fail_next(status=status, body=echo, retry_after=0 if status == 429 else None)
            walk.call("POST", path, json=body, headers=auth)


@pytest.fixture(scope="module")
def users_walk(tmp_path_factory: pytest.TempPathFactory) -> Walk:
    never = [PASSWORD, NEW_PASSWORD, ADMIN_KEY, *PROVIDER_SECRETS.values()]
    return _run(tmp_path_factory.mktemp("users"), None, _users_walk, *never)


@pytest.fixture(scope="module")
def generation_walk(tmp_path_factory: pytest.TempPathFactory, sim: OpenAISim) -> Walk:
    never = [PASSWORD, ADMIN_KEY, USER_OPENAI_KEY, SERVER_OPENAI_KEY]
    return _run(
        tmp_path_factory.mktemp("generation"),
        sim,
        lambda walk: _generation_walk(walk, sim),
        *never,
    )


@pytest.fixture(params=["users_walk", "generation_walk"])
def walk(request: pytest.FixtureRequest) -> Walk:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_no_fixed_secret_is_in_any_response(walk: Walk) -> None:
    for where, text in walk.responses:
        for secret in walk.never_shown:
            assert secret not in text, (secret, where)


def test_a_new_secret_is_only_in_the_response_that_hands_it_out(walk: Walk) -> None:
    for where, text in walk.responses:
        for secret, allowed in walk.handed_out.items():
            if where != allowed:
                assert secret not in text, (where, allowed)


def test_no_secret_is_in_the_logs(walk: Walk) -> None:
    for secret in walk.everything:
        assert secret not in walk.logs, secret


def test_no_secret_is_in_the_database_files(walk: Walk) -> None:
    db_files = [p for p in walk.data_dir.iterdir() if p.name.startswith("pluggably.db")]
    assert db_files
    for path in db_files:
        raw = path.read_bytes()
        for secret in walk.everything:
            assert secret.encode() not in raw, (secret, path.name)


def test_the_data_dir_is_the_owners_alone(users_walk: Walk) -> None:
    assert os.stat(users_walk.data_dir).st_mode & 0o077 == 0


def test_the_upstream_got_the_users_key_and_for_the_admin_the_server_key(
    generation_walk: Walk, sim: OpenAISim
) -> None:
    """The keys the other tests look for really were in play."""
    sent = {r.headers.get("authorization", "") for r in sim.requests}
    assert f"Bearer {USER_OPENAI_KEY}" in sent
    assert f"Bearer {SERVER_OPENAI_KEY}" in sent
