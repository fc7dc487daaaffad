"""User administration over HTTP (API.md §6): listing, looking up, changing role and
disabled state with their guard rails, and each account's limits (§9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.client import AsyncClient, BadRequestError, ConflictError, ForbiddenError
from pluggably.usage.limits import Limits
from tests.conftest import (
    ADMIN_KEY,
    PASSWORD,
    assert_envelope,
    client_for,
    login,
    make_settings,
    new_user,
    register,
    running,
)

ADMIN = {"X-API-Key": ADMIN_KEY}
NO_LIMITS = {
    "rpm": None,
    "tpm": None,
    "max_concurrent": None,
    "budget_usd": None,
    "budget_period": None,
    "models": None,
}


async def _user(client: httpx.AsyncClient, username: str, **extra: Any) -> dict[str, Any]:
    created = await register(client, username, **extra)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post("/v1/users/login", json={"username": username, "password": PASSWORD})


async def _bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(client, username)}"}


async def _api_token(
    client: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post("/v1/users/tokens", json={"name": "t", **body}, headers=auth)


async def _patch(client: httpx.AsyncClient, user_id: str, auth: dict[str, str], **body: Any) -> Any:
    return await client.patch(f"/v1/users/{user_id}", json=body, headers=auth)


async def _promote(client: httpx.AsyncClient, user_id: str) -> None:
    response = await _patch(client, user_id, ADMIN, role="admin")
    assert response.status_code == 200, response.text


async def test_admins_list_every_account_with_its_fields(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await _user(client, "alice", email="alice@example.com", display_name="Alice A.")
    bob = await _user(client, "bob")
    signed_in = await _login(client, "alice")
    listed = await client.get("/v1/users", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"users", "next_cursor"}
    assert body["next_cursor"] is None
    system_id = app.state.container.admin_user_id
    assert [u["id"] for u in body["users"]] == [system_id, alice["id"], bob["id"]]
    system, first, second = body["users"]
    assert system == {
        "id": system_id,
        "username": "admin",
        "email": "",
        "display_name": "Administrator",
        "role": "admin",
        "disabled": False,
        "created_at": system["created_at"],
        "last_login_at": None,
    }
    assert first == {
        "id": alice["id"],
        "username": "alice",
        "email": "alice@example.com",
        "display_name": "Alice A.",
        "role": "user",
        "disabled": False,
        "created_at": alice["created_at"],
        "last_login_at": first["last_login_at"],
    }
    assert first["last_login_at"] is not None
    assert first["last_login_at"].endswith(("Z", "+00:00"))
    assert first["last_login_at"] >= signed_in.json()["user"]["created_at"]
    assert second["last_login_at"] is None
    assert second["email"] == ""
    one = await client.get(f"/v1/users/{alice['id']}", headers=ADMIN)
    assert one.status_code == 200
    assert one.json() == first


async def test_an_email_with_control_characters_is_refused(client: httpx.AsyncClient) -> None:
    """An address is printed on an operator's terminal (``pluggably users list``): an
    escape sequence in it would drive that terminal."""
    for email in ("\x1b]0;owned\x07@example.com", "eve@example.com\x1b[2J", "eve@exa\x9bmple.com"):
        response = await register(client, "eve", email=email)
        detail = assert_envelope(response, 422, "validation_error")
        assert detail["details"][0]["loc"] == ["body", "email"]
    listed = (await client.get("/v1/users", headers=ADMIN)).json()["users"]
    assert [u["username"] for u in listed] == ["admin"]


async def test_login_records_the_time_of_each_login(client: httpx.AsyncClient) -> None:
    carol = await _user(client, "carol")
    before = (await client.get(f"/v1/users/{carol['id']}", headers=ADMIN)).json()
    assert before["last_login_at"] is None
    await _login(client, "carol")
    first = (await client.get(f"/v1/users/{carol['id']}", headers=ADMIN)).json()["last_login_at"]
    await _login(client, "carol")
    second = (await client.get(f"/v1/users/{carol['id']}", headers=ADMIN)).json()["last_login_at"]
    assert first is not None
    assert second > first
    # A failed login is not a login.
    await client.post("/v1/users/login", json={"username": "carol", "password": "wrong-password"})
    after = (await client.get(f"/v1/users/{carol['id']}", headers=ADMIN)).json()["last_login_at"]
    assert after == second


async def test_the_list_pages_with_an_opaque_cursor_and_filters(client: httpx.AsyncClient) -> None:
    made = [(await _user(client, name))["id"] for name in ("dora", "dan_1", "erin", "danny")]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/users", params=params, headers=ADMIN)).json()
        assert len(page["users"]) <= 2
        seen += [u["id"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[1:] == made  # the server's own admin row comes first
    found = await client.get("/v1/users", params={"q": "DAN"}, headers=ADMIN)
    assert [u["username"] for u in found.json()["users"]] == ["dan_1", "danny"]
    # '_' is a literal character, not LIKE's wildcard.
    literal = await client.get("/v1/users", params={"q": "n_"}, headers=ADMIN)
    assert [u["username"] for u in literal.json()["users"]] == ["dan_1"]
    nothing = await client.get("/v1/users", params={"q": "zzz"}, headers=ADMIN)
    assert nothing.json() == {"users": [], "next_cursor": None}


async def test_a_bad_cursor_or_limit_is_422(client: httpx.AsyncClient) -> None:
    bad = await client.get("/v1/users", params={"cursor": "not-a-cursor"}, headers=ADMIN)
    detail = assert_envelope(bad, 422, "validation_error")
    assert detail["details"][0]["loc"] == ["query", "cursor"]
    assert_envelope(
        await client.get("/v1/users", params={"limit": 0}, headers=ADMIN), 422, "validation_error"
    )
    assert_envelope(
        await client.get("/v1/users", params={"limit": 201}, headers=ADMIN), 422, "validation_error"
    )


async def test_user_administration_is_for_admins_only(client: httpx.AsyncClient) -> None:
    frank = await new_user(client, "frank")
    me = (await client.get("/v1/users/me", headers=frank)).json()["id"]
    calls = [
        ("GET", "/v1/users", None),
        ("GET", f"/v1/users/{me}", None),
        ("PATCH", f"/v1/users/{me}", {"role": "admin"}),
        ("GET", f"/v1/users/{me}/limits", None),
        ("PUT", f"/v1/users/{me}/limits", {}),
        ("PATCH", f"/v1/users/{me}/limits", {"rpm": None}),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=frank)
        assert_envelope(response, 403, "forbidden")
    assert (await client.get("/v1/users/me", headers=frank)).json()["role"] == "user"


async def test_an_admins_token_without_the_admin_scope_cannot_administer(
    client: httpx.AsyncClient,
) -> None:
    """Administration needs the admin role and a credential with the admin scope."""
    made = await _api_token(client, ADMIN, scopes=["read", "write"])
    assert made.status_code == 201, made.text
    token = {"X-API-Key": made.json()["token"]}
    own = (await client.get("/v1/users/me", headers=token)).json()
    assert own["role"] == "admin"
    for method, url, body in [
        ("GET", "/v1/users", None),
        ("GET", f"/v1/users/{own['id']}", None),
        ("PATCH", f"/v1/users/{own['id']}", {"display_name": "x"}),
        ("PUT", f"/v1/users/{own['id']}/limits", {}),
    ]:
        response = await client.request(method, url, json=body, headers=token)
        assert_envelope(response, 403, "forbidden")
    for path in ("/v1/usage", "/v1/usage.csv"):
        everyone = await client.get(path, params={"user_id": "*"}, headers=token)
        assert_envelope(everyone, 403, "forbidden")
        assert (await client.get(path, headers=token)).status_code == 200


async def test_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    for method, url, body in [
        ("GET", "/v1/users/usr_nope", None),
        ("PATCH", "/v1/users/usr_nope", {"display_name": "x"}),
        ("GET", "/v1/users/usr_nope/limits", None),
        ("PUT", "/v1/users/usr_nope/limits", {"rpm": 5}),
        ("PATCH", "/v1/users/usr_nope/limits", {"rpm": 5}),
    ]:
        response = await client.request(method, url, json=body, headers=ADMIN)
        detail = assert_envelope(response, 404, "not_found")
        assert "usr_nope" in detail["message"]


async def test_patch_changes_only_the_fields_given(client: httpx.AsyncClient) -> None:
    gina = await _user(client, "gina", display_name="Gina")
    renamed = await _patch(client, gina["id"], ADMIN, display_name="Gina G.")
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {
        "id": gina["id"],
        "username": "gina",
        "email": "",
        "display_name": "Gina G.",
        "role": "user",
        "disabled": False,
        "created_at": gina["created_at"],
        "last_login_at": None,
    }
    promoted = (await _patch(client, gina["id"], ADMIN, role="admin", disabled=False)).json()
    assert (promoted["role"], promoted["disabled"], promoted["display_name"]) == (
        "admin",
        False,
        "Gina G.",
    )
    cleared = (await _patch(client, gina["id"], ADMIN, display_name=None)).json()
    assert (cleared["display_name"], cleared["role"]) == (None, "admin")
    for bad in ({"role": "owner"}, {"disabled": "maybe"}, {"role": None}, {"email": "x@y.z"}):
        response = await _patch(client, gina["id"], ADMIN, **bad)
        assert_envelope(response, 422, "validation_error")


async def test_disabling_stops_login_and_api_tokens_on_their_next_request(
    client: httpx.AsyncClient,
) -> None:
    hank = await _user(client, "hank")
    signed_in = await _bearer(client, "hank")
    made = await _api_token(client, signed_in)
    api = {"X-API-Key": made.json()["token"]}
    for auth in (signed_in, api):
        assert (await client.get("/v1/users/me", headers=auth)).status_code == 200

    disabled = await _patch(client, hank["id"], ADMIN, disabled=True)
    assert disabled.json()["disabled"] is True
    for auth in (signed_in, api):
        detail = assert_envelope(
            await client.get("/v1/users/me", headers=auth), 401, "unauthorized"
        )
        assert "disabled" in detail["message"]
    assert_envelope(await _login(client, "hank"), 401, "unauthorized")

    enabled = await _patch(client, hank["id"], ADMIN, disabled=False)
    assert enabled.json()["disabled"] is False
    for auth in (signed_in, api):
        assert (await client.get("/v1/users/me", headers=auth)).json()["id"] == hank["id"]
    assert (await _login(client, "hank")).status_code == 200


async def test_a_role_change_applies_to_the_next_request(client: httpx.AsyncClient) -> None:
    ivy = await _user(client, "ivy")
    signed_in = await _bearer(client, "ivy")
    assert_envelope(await client.get("/v1/users", headers=signed_in), 403, "forbidden")
    assert_envelope(await _api_token(client, signed_in, scopes=["admin"]), 403, "forbidden")

    await _promote(client, ivy["id"])
    listed = await client.get("/v1/users", headers=signed_in)
    assert listed.status_code == 200, listed.text
    assert (await client.get("/v1/users/me", headers=signed_in)).json()["role"] == "admin"

    admin_token = await _api_token(client, signed_in, scopes=["read", "write", "admin"])
    assert admin_token.status_code == 201
    as_token = {"X-API-Key": admin_token.json()["token"]}
    assert (await client.get("/v1/users", headers=as_token)).status_code == 200
    demoted = await _patch(client, ivy["id"], ADMIN, role="user")
    assert demoted.json()["role"] == "user"
    for auth in (signed_in, as_token):
        assert_envelope(await client.get("/v1/users", headers=auth), 403, "forbidden")


async def test_the_servers_own_admin_row_cannot_be_disabled_or_demoted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    system_id = app.state.container.admin_user_id
    jack = await _user(client, "jack")
    await _promote(client, jack["id"])
    jack_auth = await _bearer(client, "jack")
    for auth in (ADMIN, jack_auth):
        for change in ({"disabled": True}, {"role": "user"}):
            detail = assert_envelope(
                await _patch(client, system_id, auth, **change), 409, "conflict"
            )
            assert "server's own administrator" in detail["message"]
    # Harmless changes go through, and so does what it already is.
    same = await _patch(client, system_id, jack_auth, role="admin", disabled=False)
    assert (same.json()["role"], same.json()["disabled"]) == ("admin", False)
    assert (await client.get("/v1/users/me", headers=ADMIN)).status_code == 200


async def test_admins_cannot_disable_or_demote_themselves(client: httpx.AsyncClient) -> None:
    kim, lee = await _user(client, "kim"), await _user(client, "lee")
    for user in (kim, lee):
        await _promote(client, user["id"])
    kim_auth = await _bearer(client, "kim")
    for change in ({"disabled": True}, {"role": "user"}):
        detail = assert_envelope(
            await _patch(client, kim["id"], kim_auth, **change), 409, "conflict"
        )
        assert "Your own account" in detail["message"]
    assert (await client.get("/v1/users/me", headers=kim_auth)).json()["role"] == "admin"
    # Another admin may.
    assert (
        await _patch(client, kim["id"], await _bearer(client, "lee"), role="user")
    ).status_code == 200


async def test_with_an_admin_key_the_only_admin_account_can_be_demoted(
    client: httpx.AsyncClient,
) -> None:
    """The admin key acts as the server's own admin row, an administrator nobody can
    lock out: an account made admin by mistake can be made a user again."""
    mia = await _user(client, "mia")
    await _promote(client, mia["id"])
    demoted = await _patch(client, mia["id"], ADMIN, role="user")
    assert demoted.json()["role"] == "user"


async def test_limits_round_trip_and_null_clears(client: httpx.AsyncClient) -> None:
    olga = await _user(client, "olga")
    url = f"/v1/users/{olga['id']}/limits"
    assert (await client.get(url, headers=ADMIN)).json() == NO_LIMITS
    full = {
        "rpm": 60,
        "tpm": 10_000,
        "max_concurrent": 2,
        "budget_usd": 5.5,
        "budget_period": "week",
        "models": ["local:*", "openai:gpt-4o*"],
    }
    put = await client.put(url, json=full, headers=ADMIN)
    assert put.status_code == 200, put.text
    assert put.json() == full
    assert (await client.get(url, headers=ADMIN)).json() == full

    merged = await client.patch(url, json={"rpm": 30, "models": None}, headers=ADMIN)
    assert merged.json() == {**full, "rpm": 30, "models": None}
    replaced = await client.put(url, json={"tpm": 500, "budget_usd": None}, headers=ADMIN)
    assert replaced.json() == {**NO_LIMITS, "tpm": 500}
    assert (await client.put(url, json={}, headers=ADMIN)).json() == NO_LIMITS
    assert (await client.get(url, headers=ADMIN)).json() == NO_LIMITS


async def test_invalid_limits_are_422_and_change_nothing(client: httpx.AsyncClient) -> None:
    pat = await _user(client, "pat")
    url = f"/v1/users/{pat['id']}/limits"
    await client.put(url, json={"rpm": 10}, headers=ADMIN)
    for bad in (
        {"rpm": 0},
        {"tpm": -1},
        {"budget_usd": -0.01},
        {"budget_period": "year"},
        {"models": [""]},
        {"burst": 3},
        {"rpm": "many"},
    ):
        for method in ("PUT", "PATCH"):
            response = await client.request(method, url, json=bad, headers=ADMIN)
            detail = assert_envelope(response, 422, "validation_error")
            assert detail["details"][0]["loc"][0] == "body"
    assert (await client.get(url, headers=ADMIN)).json() == {**NO_LIMITS, "rpm": 10}


async def test_me_shows_the_accounts_limits_and_those_in_effect(
    tmp_path: Path, database_url: str
) -> None:
    default = {"rpm": 100, "models": ["openai:*", "local:*"]}
    app = create_app(make_settings(tmp_path, database_url, limits=default))
    async with running(app), client_for(app) as client:
        quinn = await _user(client, "quinn")
        auth = await _bearer(client, "quinn")
        me = (await client.get("/v1/users/me", headers=auth)).json()
        assert me["limits"] is None
        assert me["effective_limits"] == {**NO_LIMITS, **default}
        await client.put(
            f"/v1/users/{quinn['id']}/limits",
            json={"rpm": 500, "tpm": 2000, "models": ["openai:gpt-4o*"]},
            headers=ADMIN,
        )
        me = (await client.get("/v1/users/me", headers=auth)).json()
        assert me["limits"] == {**NO_LIMITS, "rpm": 500, "tpm": 2000, "models": ["openai:gpt-4o*"]}
        assert me["effective_limits"] == {
            **NO_LIMITS,
            "rpm": 100,
            "tpm": 2000,
            "models": ["openai:gpt-4o*"],
        }
        patched = await client.patch("/v1/users/me", json={"display_name": "Q"}, headers=auth)
        assert patched.json()["effective_limits"]["rpm"] == 100
        # The server default does not apply to administrators.
        admin_me = (await client.get("/v1/users/me", headers=ADMIN)).json()
        assert (admin_me["limits"], admin_me["effective_limits"]) == (None, NO_LIMITS)


async def test_the_python_client_administers_users(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with AsyncClient("http://testserver", transport=transport, api_key=ADMIN_KEY) as admin:
        invite = await admin.invites.create()
        rosa = await admin.users.register(
            username="rosa", password=PASSWORD, invite_token=invite.token
        )
        admin_id = (await admin.users.me()).id
        page = await admin.users.list_users(limit=1, q="rosa")
        assert ([u.id for u in page.users], page.next_cursor) == ([rosa.id], None)
        assert (await admin.users.get(rosa.id)).username == "rosa"
        changed = await admin.users.update(rosa.id, role="admin", display_name="Rosa")
        assert (changed.role, changed.display_name, changed.disabled) == ("admin", "Rosa", False)
        assert (await admin.users.update(rosa.id, disabled=True)).disabled is True
        await admin.users.update(rosa.id, disabled=False, role="user")
        with pytest.raises(ConflictError):
            await admin.users.update(admin_id, disabled=True)

        assert await admin.users.limits(rosa.id) == Limits()
        put = await admin.users.set_limits(rosa.id, {"rpm": 30, "models": ["openai:*"]})
        assert (put.rpm, put.models) == (30, ["openai:*"])
        patched = await admin.users.update_limits(rosa.id, Limits(tpm=900, models=None))
        assert (patched.rpm, patched.tpm, patched.models) == (30, 900, None)

        signed_in = await admin.users.login(username="rosa", password=PASSWORD)
        rosa_client = admin.with_auth(token=signed_in.token)
        me = await rosa_client.users.me()
        assert me.effective_limits == Limits(rpm=30, tpm=900)
        token = await rosa_client.tokens.create("ci", limits={"rpm": 5})
        assert token.info.limits == Limits(rpm=5)
        with pytest.raises(ForbiddenError):
            await rosa_client.users.list_users()
        with pytest.raises(BadRequestError) as wider:
            await rosa_client.tokens.create("greedy", limits=Limits(rpm=31))
        assert (wider.value.status, wider.value.code) == (400, "invalid_parameter")
