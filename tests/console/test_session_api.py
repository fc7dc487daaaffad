"""The console's session over HTTP (API.md §10): sign in sets an HttpOnly session cookie
and a CSRF cookie; every API route takes the cookie only with the matching
``X-CSRF-Token`` header; sign out revokes it. First run: the one-time setup token
creates the first administrator, once. And the console's files are served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably import __version__
from pluggably.app import create_app
from pluggably.config import Settings
from pluggably.users.first_run import setup_link
from tests.conftest import (
    ADMIN_KEY,
    PASSWORD,
    assert_envelope,
    client_for,
    make_settings,
    register,
    running,
)
from tests.console.conftest import PASSWORD as CONSOLE_PASSWORD
from tests.console.conftest import close_console, start_console

ADMIN = {"X-API-Key": ADMIN_KEY}
SESSION, CSRF = "pluggably_session", "pluggably_csrf"


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name, lower-cased for attribute checks."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        found[header.split("=", 1)[0]] = header.lower()
    return found


def _attributes(header: str) -> dict[str, str]:
    """A Set-Cookie header's attributes (after the name=value), a flag as ``""``."""
    pairs = (part.strip().partition("=") for part in header.split(";")[1:])
    return {name: value for name, _, value in pairs}


async def _sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/ui/api/session", json={"username": username, "password": password})


async def _signed_in(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Registers ``username``, signs in; the client keeps the cookies. The CSRF header."""
    assert (await register(client, username)).status_code == 201
    response = await _sign_in(client, username)
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": client.cookies[CSRF]}


def _cookie_client(app: FastAPI, session: str) -> httpx.AsyncClient:
    """A client holding only the session cookie ``session``."""
    client = client_for(app)
    client.cookies.set(SESSION, session)
    return client


async def test_signing_in_sets_an_httponly_session_cookie_and_a_readable_csrf_cookie(
    client: httpx.AsyncClient,
) -> None:
    assert (await register(client, "alice")).status_code == 201
    response = await _sign_in(client, "alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"user", "expires_at"}
    assert body["user"]["username"] == "alice"
    assert body["expires_at"].endswith(("Z", "+00:00"))
    cookies = _set_cookies(response)
    session, csrf = cookies[SESSION], cookies[CSRF]
    for header in (session, csrf):
        attributes = _attributes(header)
        assert attributes["samesite"] == "strict"
        assert attributes["path"] == "/"
        assert 86_000 < int(attributes["max-age"]) <= 86_400  # the login token's lifetime
        assert "secure" not in attributes  # plain http here
    assert "httponly" in session
    assert "httponly" not in csrf  # the page's script echoes it
    # The cookie is the login token itself; the CSRF value is not.
    token = client.cookies[SESSION]
    assert token.startswith("eyJ")
    assert client.cookies[CSRF] != token
    assert token not in response.text


async def test_cookies_are_secure_over_https(app: FastAPI) -> None:
    async with client_for(app, base_url="https://testserver") as client:
        assert (await register(client, "alice")).status_code == 201
        cookies = _set_cookies(await _sign_in(client, "alice"))
        assert "; secure" in cookies[SESSION]
        assert "; secure" in cookies[CSRF]
        headers = {"X-CSRF-Token": client.cookies[CSRF]}
        out = await client.delete("/ui/api/session", headers=headers)
        assert out.status_code == 200, out.text
        assert all("; secure" in header for header in _set_cookies(out).values())


async def test_the_cookie_with_its_csrf_header_works_on_reads_and_writes(
    client: httpx.AsyncClient,
) -> None:
    csrf = await _signed_in(client, "alice")
    me = await client.get("/v1/users/me", headers=csrf)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    made = await client.post("/v1/users/tokens", json={"name": "laptop"}, headers=csrf)
    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("plg_")


async def test_the_cookie_without_the_csrf_header_is_refused(client: httpx.AsyncClient) -> None:
    await _signed_in(client, "alice")
    for method, path, body in (
        ("GET", "/v1/users/me", None),
        ("POST", "/v1/users/tokens", {"name": "forged"}),
    ):
        response = await client.request(method, path, json=body)
        detail = assert_envelope(response, 403, "forbidden")
        assert "X-CSRF-Token" in detail["message"]
    listed = await client.get("/v1/users/tokens", headers={"X-CSRF-Token": client.cookies[CSRF]})
    assert listed.json() == []  # the forged write made nothing


async def test_a_wrong_csrf_header_is_refused(client: httpx.AsyncClient) -> None:
    csrf = (await _signed_in(client, "alice"))["X-CSRF-Token"]
    key_id, _, mac = csrf.partition(".")
    for wrong in ("x", csrf + "x", f"{key_id}.{mac[::-1]}", f"nokey.{mac}", mac):
        response = await client.get("/v1/users/me", headers={"X-CSRF-Token": wrong})
        detail = assert_envelope(response, 403, "forbidden")
        assert "does not match" in detail["message"]


async def test_another_sessions_csrf_value_does_not_fit_this_cookie(app: FastAPI) -> None:
    async with client_for(app) as alice, client_for(app) as bob:
        await _signed_in(alice, "alice")
        bobs = await _signed_in(bob, "bob")
        first_cookie = alice.cookies[SESSION]
        async with _cookie_client(app, first_cookie) as forged:
            assert_envelope(await forged.get("/v1/users/me", headers=bobs), 403, "forbidden")
        # Two sign-ins of one person are two sessions, each with its own CSRF value.
        assert (await _sign_in(alice, "alice")).status_code == 200
        second = {"X-CSRF-Token": alice.cookies[CSRF]}
        assert alice.cookies[SESSION] != first_cookie
        async with _cookie_client(app, first_cookie) as mixed:
            assert_envelope(await mixed.get("/v1/users/me", headers=second), 403, "forbidden")
        assert (await alice.get("/v1/users/me", headers=second)).status_code == 200


async def test_a_header_credential_wins_over_the_cookie(client: httpx.AsyncClient) -> None:
    await _signed_in(client, "alice")
    # No CSRF header needed with a real credential: the cookie is not looked at.
    me = await client.get("/v1/users/me", headers=ADMIN)
    assert me.status_code == 200
    assert me.json()["username"] == "admin"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/openai/v1/models", None),
        ("POST", "/openai/v1/chat/completions", {"model": "x", "messages": []}),
        ("POST", "/anthropic/v1/messages", {"model": "x", "max_tokens": 1, "messages": []}),
        ("GET", "/api/tags", None),
        ("POST", "/api/chat", {"model": "x", "messages": []}),
        ("GET", "/v1/usage.csv", None),
        ("GET", "/v1/requests", None),
        ("GET", "/metrics", None),
    ],
)
async def test_no_surface_takes_the_cookie_without_its_csrf_header(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    await _signed_in(client, "alice")
    response = await client.request(method, path, json=body)
    assert response.status_code == 403, response.text
    assert "X-CSRF-Token" in response.text


async def test_a_bad_header_credential_is_not_rescued_by_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    csrf = await _signed_in(client, "alice")
    for bad in ({"X-API-Key": "plg_wrong"}, {"Authorization": "Bearer plg_wrong"}):
        response = await client.get("/v1/users/me", headers={**csrf, **bad})
        assert response.status_code == 401, response.text


async def test_signing_out_revokes_the_session_and_clears_both_cookies(app: FastAPI) -> None:
    async with client_for(app) as client:
        csrf = await _signed_in(client, "alice")
        token = client.cookies[SESSION]
        out = await client.delete("/ui/api/session", headers=csrf)
        assert out.status_code == 200, out.text
        assert out.json() == {"status": "signed_out"}
        cleared = _set_cookies(out)
        assert set(cleared) == {SESSION, CSRF}
        assert all("max-age=0" in header for header in cleared.values())
        assert SESSION not in client.cookies
    # The old cookie, kept by someone, no longer works even with its CSRF value.
    async with _cookie_client(app, token) as stale:
        revoked = await stale.get("/v1/users/me", headers=csrf)
    assert_envelope(revoked, 401, "unauthorized")
    assert "revoked" in revoked.json()["detail"]["message"]


async def test_signing_out_without_a_session_still_clears_the_cookies(
    client: httpx.AsyncClient,
) -> None:
    out = await client.delete("/ui/api/session")
    assert out.status_code == 200
    assert set(_set_cookies(out)) == {SESSION, CSRF}


async def test_signing_out_needs_the_csrf_header(client: httpx.AsyncClient) -> None:
    await _signed_in(client, "alice")
    assert_envelope(await client.delete("/ui/api/session"), 403, "forbidden")
    # Refused, so the session still works.
    me = await client.get("/v1/users/me", headers={"X-CSRF-Token": client.cookies[CSRF]})
    assert me.status_code == 200


async def test_another_sites_page_cannot_sign_the_browser_in(client: httpx.AsyncClient) -> None:
    # Login CSRF: a page elsewhere POSTs the attacker's own credentials to plant his
    # session in the victim's browser, where what she types in the chat is then his to
    # read. A JSON body needs a preflight, and FastAPI 0.132+ reads no other as JSON,
    # but the FastAPI this project allows (>=0.115) read a body without a Content-Type
    # (no preflight) as JSON: the browser's own word on where it came from decides.
    assert (await register(client, "mallory")).status_code == 201
    credentials = {"username": "mallory", "password": PASSWORD}
    for site in ("cross-site", "same-site"):
        response = await client.post(
            "/ui/api/session",
            json=credentials,
            headers={"Sec-Fetch-Site": site, "Origin": "https://elsewhere.example"},
        )
        assert_envelope(response, 403, "forbidden")
        assert _set_cookies(response) == {}
    # The console's own page (same-origin) and clients that send no such header sign in.
    assert (await _sign_in(client, "mallory")).status_code == 200
    own = await client.post(
        "/ui/api/session", json=credentials, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert own.status_code == 200, own.text


async def test_a_wrong_password_is_401_and_sets_no_cookie(client: httpx.AsyncClient) -> None:
    assert (await register(client, "alice")).status_code == 201
    response = await _sign_in(client, "alice", "not-the-password")
    assert_envelope(response, 401, "unauthorized")
    assert response.headers.get_list("set-cookie") == []
    unknown = await _sign_in(client, "nobody", "not-the-password")
    assert_envelope(unknown, 401, "unauthorized")


async def test_signing_in_with_the_email_address_works(client: httpx.AsyncClient) -> None:
    created = await register(client, "alice", email="alice@example.com")
    assert created.status_code == 201, created.text
    response = await _sign_in(client, "Alice@Example.com")
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == "alice@example.com"


async def test_failed_sign_ins_are_throttled_like_logins(client: httpx.AsyncClient) -> None:
    assert (await register(client, "alice")).status_code == 201
    for _ in range(5):
        assert_envelope(await _sign_in(client, "alice", "not-the-password"), 401, "unauthorized")
    throttled = await _sign_in(client, "alice", PASSWORD)
    detail = assert_envelope(throttled, 429, "rate_limited")
    assert detail["retry_after"] >= 1
    assert throttled.headers.get_list("set-cookie") == []
    # The API's own login counts in the same budget.
    login = await client.post("/v1/users/login", json={"username": "alice", "password": PASSWORD})
    assert_envelope(login, 429, "rate_limited")


async def test_bootstrap_tells_the_sign_in_page_what_it_needs(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/api/bootstrap")
    assert response.status_code == 200
    assert response.json() == {
        "setup_required": False,
        "registration_open": False,
        "version": __version__,
    }


async def test_bootstrap_says_when_registration_is_open(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, registration_open=True)
    async with running(create_app(settings)) as app, client_for(app) as client:
        assert (await client.get("/ui/api/bootstrap")).json()["registration_open"] is True


# first run


@pytest.fixture
def first_run_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, admin_key=None)


@pytest.fixture
async def first_run_app(first_run_settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(create_app(first_run_settings)) as app:
        yield app


def _token(app: FastAPI) -> str:
    token = app.state.container.first_run.token
    assert isinstance(token, str)
    return token


def _setup_body(token: str, username: str = "root-person", **extra: Any) -> dict[str, Any]:
    return {"token": token, "username": username, "password": PASSWORD, **extra}


async def test_the_setup_token_creates_the_first_admin_whose_password_signs_in(
    first_run_app: FastAPI,
) -> None:
    async with client_for(first_run_app) as client:
        assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is True
        body = _setup_body(_token(first_run_app), "Grace", display_name="Grace H.")
        made = await client.post("/ui/api/setup", json=body)
        assert made.status_code == 201, made.text
        admin = made.json()
        assert (admin["username"], admin["role"], admin["display_name"]) == (
            "grace",
            "admin",
            "Grace H.",
        )
        assert made.headers.get_list("set-cookie") == []  # setting up does not sign in
        assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is False
        signed_in = await _sign_in(client, "grace")
        assert signed_in.status_code == 200, signed_in.text
        users = await client.get("/v1/users", headers={"X-CSRF-Token": client.cookies[CSRF]})
        assert users.status_code == 200, users.text  # an administrator's route
        again = await client.post("/ui/api/setup", json=_setup_body(_token(first_run_app), "other"))
        assert_envelope(again, 400, "invalid_invite")
        assert "already complete" in again.json()["detail"]["message"]


async def test_a_setup_link_logged_by_one_replica_works_through_another_and_only_once(
    first_run_settings: Settings, tmp_path: Path
) -> None:
    """Two servers on one database (replicas behind a load balancer): each logs its own
    link; either link works through either server, and the first admin spends both."""
    other = first_run_settings.model_copy(update={"data_dir": tmp_path / "other"})
    async with (
        running(create_app(first_run_settings)) as a,
        running(create_app(other)) as b,
        client_for(a) as ca,
        client_for(b) as cb,
    ):
        assert (await cb.get("/ui/api/bootstrap")).json()["setup_required"] is True
        wrong = await cb.post("/ui/api/setup", json=_setup_body("not-" + _token(a)))
        assert_envelope(wrong, 400, "invalid_invite")
        made = await cb.post("/ui/api/setup", json=_setup_body(_token(a), "from-a"))
        assert made.status_code == 201, made.text
        late = await ca.post("/ui/api/setup", json=_setup_body(_token(b), "from-b"))
        assert_envelope(late, 400, "invalid_invite")
        for client in (ca, cb):
            assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is False


async def test_a_wrong_setup_token_is_refused(first_run_app: FastAPI) -> None:
    async with client_for(first_run_app) as client:
        token = _token(first_run_app)
        for wrong in ("nope", token[:-1], token + "x", ""):
            response = await client.post("/ui/api/setup", json=_setup_body(wrong))
            detail = assert_envelope(response, 400, "invalid_invite")
            assert "not valid" in detail["message"]
        assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is True
        # The right one still works.
        assert (await client.post("/ui/api/setup", json=_setup_body(token))).status_code == 201


async def test_a_second_setup_is_refused_even_with_the_right_token(first_run_app: FastAPI) -> None:
    async with client_for(first_run_app) as client:
        token = _token(first_run_app)
        assert (await client.post("/ui/api/setup", json=_setup_body(token))).status_code == 201
        again = await client.post("/ui/api/setup", json=_setup_body(token, "mallory"))
        detail = assert_envelope(again, 400, "invalid_invite")
        assert "already complete" in detail["message"]
        mallory = await _sign_in(client, "mallory")
        assert_envelope(mallory, 401, "unauthorized")


async def test_setups_at_the_same_moment_make_one_admin(first_run_app: FastAPI) -> None:
    async with client_for(first_run_app) as client:
        token = _token(first_run_app)
        answers = await asyncio.gather(
            *(client.post("/ui/api/setup", json=_setup_body(token, f"admin-{i}")) for i in range(4))
        )
        assert sorted(a.status_code for a in answers) == [201, 400, 400, 400]
        users = (await client.get("/ui/api/bootstrap")).json()
        assert users["setup_required"] is False


async def test_an_admin_made_another_way_ends_the_setup(first_run_app: FastAPI) -> None:
    """An administrator created meanwhile (the CLI, another replica) closes the link."""
    from pluggably.users.models import User

    container = first_run_app.state.container
    async with container.db.session() as session:
        session.add(User(username="ops", role="admin", preferences={}))
    async with client_for(first_run_app) as client:
        assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is False
        response = await client.post("/ui/api/setup", json=_setup_body("whatever"))
        assert_envelope(response, 400, "invalid_invite")


async def test_setup_explains_a_reserved_username_and_keeps_the_token(
    first_run_app: FastAPI,
) -> None:
    async with client_for(first_run_app) as client:
        token = _token(first_run_app)
        reserved = await client.post("/ui/api/setup", json=_setup_body(token, "admin"))
        detail = assert_envelope(reserved, 409, "conflict")
        assert "reserved" in detail["message"]
        weak = await client.post(
            "/ui/api/setup", json={**_setup_body(token, "grace"), "password": "short"}
        )
        assert_envelope(weak, 422, "validation_error")
        bad_name = await client.post("/ui/api/setup", json=_setup_body(token, "a b"))
        assert_envelope(bad_name, 422, "validation_error")
        # None of those spent the link.
        assert (await client.post("/ui/api/setup", json=_setup_body(token))).status_code == 201


async def test_no_setup_after_a_restart_once_an_admin_exists(
    first_run_settings: Settings,
) -> None:
    async with running(create_app(first_run_settings)) as app, client_for(app) as client:
        made = await client.post("/ui/api/setup", json=_setup_body(_token(app)))
        assert made.status_code == 201
    async with running(create_app(first_run_settings)) as app, client_for(app) as client:
        assert app.state.container.first_run.token is None
        assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is False
        assert (await _sign_in(client, "root-person")).status_code == 200


@pytest.mark.parametrize("setting", [{"admin_key": ADMIN_KEY}, {"local_only": True}])
async def test_setup_is_not_offered_when_the_server_has_an_admin_key_or_is_local_only(
    tmp_path: Path, database_url: str, setting: dict[str, Any]
) -> None:
    settings = make_settings(tmp_path, database_url, **{"admin_key": None, **setting})
    async with running(create_app(settings)) as app, client_for(app) as client:
        assert app.state.container.first_run.token is None
        assert (await client.get("/ui/api/bootstrap")).json()["setup_required"] is False
        response = await client.post("/ui/api/setup", json=_setup_body("anything"))
        assert_envelope(response, 400, "invalid_invite")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000/ui/setup?token=t0k"),
        ("0.0.0.0", "http://127.0.0.1:9000/ui/setup?token=t0k"),
        ("::", "http://127.0.0.1:9000/ui/setup?token=t0k"),
        ("::1", "http://[::1]:9000/ui/setup?token=t0k"),
        ("192.168.1.20", "http://192.168.1.20:9000/ui/setup?token=t0k"),
        ("localhost", "http://localhost:9000/ui/setup?token=t0k"),
    ],
)
def test_the_setup_link_names_the_bound_address(tmp_path: Path, host: str, expected: str) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", host=host, port=9000)
    assert setup_link(settings, "t0k") == expected


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_pluggably_serve_logs_the_setup_link_and_the_link_opens_the_page(
    tmp_path: Path, log_format: str
) -> None:
    console = start_console(tmp_path, None, admin_key=False, PLUGGABLY_LOG_FORMAT=log_format)
    try:
        link = console.setup_link()
        assert link.startswith(console.base + "/ui/setup?token=")
        lines = [line for line in console.log().splitlines() if "/ui/setup?token=" in line]
        assert len(lines) == 1, console.log()
        assert "first_run_setup" in lines[0]
        assert "warn" in lines[0].lower()
        page = httpx.get(link, timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        token = link.rsplit("=", 1)[1]
        made = httpx.post(
            console.url("/ui/api/setup"),
            json={"token": token, "username": "grace", "password": PASSWORD},
            timeout=10,
        )
        assert made.status_code == 201, made.text
    finally:
        close_console(console)


@pytest.mark.slow
def test_pluggably_serve_with_an_admin_key_logs_no_setup_link(tmp_path: Path) -> None:
    console = start_console(tmp_path, None)
    try:
        assert "/ui/setup" not in console.log()
    finally:
        close_console(console)


def _sign_in_forwarded(console: Any) -> dict[str, str]:
    console.make_user("alice")
    response = httpx.post(
        console.url("/ui/api/session"),
        json={"username": "alice", "password": CONSOLE_PASSWORD},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return _set_cookies(response)


@pytest.mark.slow
def test_cookies_are_secure_when_a_trusted_proxy_says_https(tmp_path: Path) -> None:
    console = start_console(tmp_path, None, PLUGGABLY_TRUSTED_PROXIES='["127.0.0.1"]')
    try:
        cookies = _sign_in_forwarded(console)
        assert "; secure" in cookies[SESSION]
        assert "; secure" in cookies[CSRF]
    finally:
        close_console(console)


@pytest.mark.slow
def test_an_untrusted_peer_cannot_claim_https(tmp_path: Path) -> None:
    console = start_console(tmp_path, None)
    try:
        cookies = _sign_in_forwarded(console)
        assert "secure" not in _attributes(cookies[SESSION])
    finally:
        close_console(console)


# serving the console's files


@pytest.mark.parametrize("path", ["/ui/", "/ui/chat/x", "/ui/admin/users", "/ui/login"])
async def test_every_console_path_answers_the_one_page(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<main id="main"' in response.text
    assert "/ui/static/js/app.js" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_static_files_are_served_with_their_type_and_an_etag(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ui/static/js/app.js")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in {
        "text/javascript",
        "application/javascript",
    }
    etag = response.headers["etag"]
    assert etag
    again = await client.get("/ui/static/js/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304


async def test_an_unknown_static_file_is_a_404_in_the_api_error_shape(
    client: httpx.AsyncClient,
) -> None:
    assert_envelope(await client.get("/ui/static/js/nothing-here.js"), 404, "not_found")


async def test_the_page_served_as_a_static_file_has_the_pages_security_headers(
    client: httpx.AsyncClient,
) -> None:
    # /ui/static/index.html is the console page too: without the policy it could be
    # framed (clickjacking) and would run without the script restrictions.
    response = await client.get("/ui/static/index.html")
    assert response.status_code == 200
    assert "/ui/static/js/app.js" in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/../routes.py",
        "/ui/static/%2e%2e/routes.py",
        "/ui/static/..%2froutes.py",
        "/ui/static/js/../../routes.py",
        "/ui/static/%2e%2e/%2e%2e/console/routes.py",
    ],
)
async def test_static_files_never_come_from_outside_the_static_folder(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(httpx.URL(path))
    assert "STATIC_DIR" not in response.text
    assert "CONTENT_SECURITY_POLICY" not in response.text
