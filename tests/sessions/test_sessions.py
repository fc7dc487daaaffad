"""Sessions over HTTP (API.md §5): lifecycle, ownership, paging, message windows,
automatic titles, retention, restarts, and a statement count for the listing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, insert, select, update

from pluggably.app import create_app
from pluggably.artifacts.models import Artifact
from pluggably.config import Settings
from pluggably.db import utcnow
from pluggably.errors import SessionClosed, SessionNotFound
from pluggably.sessions.messages import auto_title
from pluggably.sessions.models import ChatSession, SessionMessage
from pluggably.sessions.service import SessionService
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, new_user, running

ADMIN = {"X-API-Key": ADMIN_KEY}
SUMMARY_KEYS = {"id", "title", "status", "created_at", "last_used_at", "message_count"}
INFO_KEYS = SUMMARY_KEYS | {"system_prompt", "state_tokens"}
MESSAGE_KEYS = {
    "id",
    "role",
    "content",
    "modality",
    "model",
    "provider",
    "artifacts",
    "tool_calls",
    "tool_call_id",
    "reasoning",
    "reasoning_signature",
    "created_at",
}


# helpers
def sessions_of(app: FastAPI) -> SessionService:
    service: SessionService = app.state.container.sessions
    return service


async def user_id(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    return str((await client.get("/v1/users/me", headers=auth)).json()["id"])


async def create(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/sessions", json=body, headers=auth)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def get(
    client: httpx.AsyncClient, auth: dict[str, str], session_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"/v1/sessions/{session_id}", params=params, headers=auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def append(
    app: FastAPI, owner: str, session_id: str, *turns: tuple[str, str], **extra: Any
) -> list[str]:
    """Add (role, content) messages through the service, as generation does."""
    service = sessions_of(app)
    ids = []
    async with app.state.container.db.session() as s:
        chat = await service.for_generation(s, owner, session_id)
        for role, content in turns:
            ids.append((await service.append(s, chat, role=role, content=content, **extra)).id)
    return ids


def aware(stamp: str) -> datetime:
    assert stamp.endswith(("Z", "+00:00")), stamp
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() == timedelta(0)
    return moment


async def list_all(
    client: httpx.AsyncClient, auth: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/sessions", params=query, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"sessions", "next_cursor"}
        found += page["sessions"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


@contextmanager
def counted(app: FastAPI) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the block runs."""
    engine = app.state.container.db.engine.sync_engine
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


# automatic titles (unit)
@pytest.mark.parametrize(
    ("prompt", "title"),
    [
        ("Hello there", "Hello there"),
        ("  \n\n  Plan a trip to Lisbon  \nwith kids", "Plan a trip to Lisbon"),
        ("x" * 50, "x" * 50),
        ("x" * 70, "x" * 50),
        ("word " * 20, "word word word word word word word word word word"),
        # A word that ends exactly at 50 characters is kept whole.
        ("a" * 45 + " bcde" + " more words", "a" * 45 + " bcde"),
        # One character more and it no longer fits.
        ("a" * 45 + " bcdef" + " more", "a" * 45),
        ("short " + "y" * 60, "short"),
        ("tab\tseparated " + "z" * 60, "tab\tseparated"),
        ("", ""),
        ("   \n\t\n", ""),
        ("Ünïcödé 🙂 titles", "Ünïcödé 🙂 titles"),
    ],
)
def test_auto_title(prompt: str, title: str) -> None:
    result = auto_title(prompt)
    assert result == title
    assert len(result) <= 50
    assert result == result.strip()
    assert not result.endswith("…")


# lifecycle
async def test_create_get_list(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    created = await create(client, auth, title=" Trip ", system_prompt="Be brief.")
    assert set(created) == INFO_KEYS
    assert created["id"].startswith("ses_")
    assert created["title"] == "Trip"
    assert created["system_prompt"] == "Be brief."
    assert created["status"] == "active"
    assert created["message_count"] == 0
    assert created["state_tokens"] is None
    assert aware(created["created_at"]) == aware(created["last_used_at"])

    detail = await get(client, auth, created["id"])
    assert set(detail) == INFO_KEYS | {"messages", "next_before"}
    assert detail["messages"] == []
    assert detail["next_before"] is None
    assert {k: detail[k] for k in INFO_KEYS} == created

    bare = await create(client, auth)
    assert bare["title"] is None
    assert bare["system_prompt"] is None
    listed = await list_all(client, auth)
    assert [s["id"] for s in listed] == [bare["id"], created["id"]]
    assert all(set(s) == SUMMARY_KEYS for s in listed)
    assert listed[1] == {k: created[k] for k in SUMMARY_KEYS}


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x" * 201},
        {"title": "   "},
        {"title": 5},
        {"system_prompt": "x" * 65_537},
        {"model": "gpt"},
        ["not", "an", "object"],
    ],
)
async def test_create_validation(client: httpx.AsyncClient, body: Any) -> None:
    auth = await new_user(client, "alice")
    detail = assert_envelope(
        await client.post("/v1/sessions", json=body, headers=auth), 422, "validation_error"
    )
    assert detail["details"]
    assert (await client.get("/v1/sessions", headers=auth)).json()["sessions"] == []


async def test_update_put_and_patch(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth, system_prompt="old"))["id"]
    path = f"/v1/sessions/{sid}"

    r = await client.put(path, json={"title": "Named"}, headers=auth)
    assert r.status_code == 200, r.text
    assert set(r.json()) == INFO_KEYS
    assert r.json()["title"] == "Named"
    assert r.json()["system_prompt"] == "old"
    r = await client.patch(path, json={"system_prompt": "new"}, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["title"], r.json()["system_prompt"]) == ("Named", "new")
    assert (await client.put(path, json={}, headers=auth)).json() == r.json()

    # The explicit title survives the first prompt.
    await append(app, owner, sid, ("user", "What is the capital of France?"))
    assert (await get(client, auth, sid))["title"] == "Named"

    # Clearing it lets the next prompt title the session.
    r = await client.patch(path, json={"title": None, "system_prompt": None}, headers=auth)
    assert (r.json()["title"], r.json()["system_prompt"]) == (None, None)
    await append(app, owner, sid, ("user", "Second prompt"))
    assert (await get(client, auth, sid))["title"] == "Second prompt"

    for body in ({"title": ""}, {"title": "x" * 201}, {"status": "closed"}):
        assert_envelope(await client.patch(path, json=body, headers=auth), 422, "validation_error")
        assert_envelope(await client.put(path, json=body, headers=auth), 422, "validation_error")


async def test_automatic_title(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth))["id"]
    await append(app, owner, sid, ("system", "You are terse."), ("assistant", "Hi!"))
    assert (await get(client, auth, sid))["title"] is None
    long = "Explain how a transformer model attends to earlier tokens in a sequence\nplease"
    await append(app, owner, sid, ("user", long))
    assert (await get(client, auth, sid))[
        "title"
    ] == "Explain how a transformer model attends to earlier"
    await append(app, owner, sid, ("user", "Something else entirely"))
    assert (await get(client, auth, sid))[
        "title"
    ] == "Explain how a transformer model attends to earlier"

    titled = (await create(client, auth, title="Mine"))["id"]
    await append(app, owner, titled, ("user", "Not the title"))
    assert (await get(client, auth, titled))["title"] == "Mine"

    # A title set by hand while the first turn runs is not overwritten either.
    racing = (await create(client, auth))["id"]
    service = sessions_of(app)
    async with app.state.container.db.session() as s:
        chat = await service.for_generation(s, owner, racing)
    r = await client.patch(f"/v1/sessions/{racing}", json={"title": "Set meanwhile"}, headers=auth)
    assert r.status_code == 200
    async with app.state.container.db.session() as s:
        await service.append(s, chat, role="user", content="Automatic")
    assert (await get(client, auth, racing))["title"] == "Set meanwhile"


async def test_close_keeps_history(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth))["id"]
    await append(app, owner, sid, ("user", "hi"), ("assistant", "hello"))
    async with app.state.container.db.session() as s:
        chat = await sessions_of(app).for_generation(s, owner, sid)
        await sessions_of(app).set_state_tokens(s, chat, {"ctx": [1, 2, 3]})

    r = await client.delete(f"/v1/sessions/{sid}", headers=auth)
    assert r.status_code == 200
    assert r.json()["status"] == "closed"
    detail = await get(client, auth, sid)
    assert detail["status"] == "closed"
    assert detail["message_count"] == 2
    assert [m["content"] for m in detail["messages"]] == ["hi", "hello"]
    assert detail["state_tokens"] == {"ctx": [1, 2, 3]}
    async with app.state.container.db.session() as s:
        row = await s.get(ChatSession, sid)
        assert row is not None
        assert row.closed_at is not None
        closed_at = row.closed_at
        with pytest.raises(SessionClosed):
            await sessions_of(app).for_generation(s, owner, sid)

    # Closing again changes nothing; a closed session's history cannot be reset.
    assert (await client.delete(f"/v1/sessions/{sid}", headers=auth)).status_code == 200
    async with app.state.container.db.session() as s:
        row = await s.get(ChatSession, sid)
        assert row is not None
        assert row.closed_at == closed_at
    assert_envelope(
        await client.post(f"/v1/sessions/{sid}/reset", headers=auth), 400, "session_closed"
    )
    assert (await get(client, auth, sid))["message_count"] == 2


async def test_purge(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    keep = (await create(client, auth))["id"]
    sid = (await create(client, auth))["id"]
    await append(app, owner, sid, ("user", "hi"), ("assistant", "hello"))
    await append(app, owner, keep, ("user", "stay"))
    await client.delete(f"/v1/sessions/{sid}", headers=auth)  # closed ones can be purged too

    r = await client.delete(f"/v1/sessions/{sid}", params={"purge": "true"}, headers=auth)
    assert r.status_code == 200
    assert (r.json()["id"], r.json()["status"]) == (sid, "closed")
    detail = assert_envelope(
        await client.get(f"/v1/sessions/{sid}", headers=auth), 404, "session_not_found"
    )
    assert sid in detail["message"]
    assert [s["id"] for s in await list_all(client, auth)] == [keep]
    async with app.state.container.db.session() as s:
        left = (await s.execute(select(SessionMessage.session_id))).scalars().all()
    assert left == [keep]
    assert_envelope(
        await client.delete(f"/v1/sessions/{sid}", params={"purge": "true"}, headers=auth),
        404,
        "session_not_found",
    )


async def test_reset(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth, system_prompt="Be brief."))["id"]
    await append(app, owner, sid, ("user", "First question"), ("assistant", "answer"))
    async with app.state.container.db.session() as s:
        chat = await sessions_of(app).for_generation(s, owner, sid)
        await sessions_of(app).set_state_tokens(s, chat, {"ids": [1]})

    r = await client.post(f"/v1/sessions/{sid}/reset", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == INFO_KEYS
    assert body["message_count"] == 0
    assert body["state_tokens"] is None
    assert (body["title"], body["system_prompt"]) == ("First question", "Be brief.")
    assert (await get(client, auth, sid))["messages"] == []

    # The conversation starts over; the title stays.
    await append(app, owner, sid, ("user", "Another"))
    detail = await get(client, auth, sid)
    assert detail["message_count"] == 1
    assert [m["content"] for m in detail["messages"]] == ["Another"]
    assert detail["title"] == "First question"


# ownership, scopes
async def test_other_users_sessions_are_404(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice = await new_user(client, "alice")
    bob = await new_user(client, "bob")
    alice_id, bob_id = await user_id(client, alice), await user_id(client, bob)
    sid = (await create(client, alice, title="private"))["id"]
    (first,) = await append(app, alice_id, sid, ("user", "secret"))
    before = await get(client, alice, sid)

    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/sessions/{sid}", None),
        ("GET", f"/v1/sessions/{sid}?limit=1&before={first}", None),
        ("PUT", f"/v1/sessions/{sid}", {"title": "mine now"}),
        ("PATCH", f"/v1/sessions/{sid}", {"system_prompt": "mine now"}),
        ("POST", f"/v1/sessions/{sid}/reset", None),
        ("DELETE", f"/v1/sessions/{sid}", None),
        ("DELETE", f"/v1/sessions/{sid}?purge=true", None),
    ]
    for method, path, body in routes:
        response = await client.request(method, path, json=body, headers=bob)
        detail = assert_envelope(response, 404, "session_not_found")
        assert sid in detail["message"]
        # The same answer as for an id that never existed.
        unknown = await client.request(
            method, path.replace(sid, "ses_nope"), json=body, headers=bob
        )
        assert_envelope(unknown, 404, "session_not_found")

    assert await get(client, alice, sid) == before
    assert (await client.get("/v1/sessions", headers=bob)).json()["sessions"] == []
    async with app.state.container.db.session() as s:
        with pytest.raises(SessionNotFound, match=sid):
            await sessions_of(app).for_generation(s, bob_id, sid)
        with pytest.raises(SessionNotFound, match="ses_nope"):
            await sessions_of(app).for_generation(s, alice_id, "ses_nope")


async def test_scopes(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    sid = (await create(client, auth))["id"]
    made = await client.post(
        "/v1/users/tokens", json={"name": "ro", "scopes": ["read"]}, headers=auth
    )
    read_only = {"X-API-Key": made.json()["token"]}
    assert (await client.get("/v1/sessions", headers=read_only)).status_code == 200
    assert (await client.get(f"/v1/sessions/{sid}", headers=read_only)).status_code == 200
    for method, path, body in [
        ("POST", "/v1/sessions", {}),
        ("PUT", f"/v1/sessions/{sid}", {"title": "x"}),
        ("PATCH", f"/v1/sessions/{sid}", {"title": "x"}),
        ("POST", f"/v1/sessions/{sid}/reset", None),
        ("DELETE", f"/v1/sessions/{sid}", None),
    ]:
        response = await client.request(method, path, json=body, headers=read_only)
        assert_envelope(response, 403, "forbidden")
    for method, path in [("GET", "/v1/sessions"), ("POST", "/v1/sessions")]:
        assert_envelope(await client.request(method, path), 401, "unauthorized")
    assert (await get(client, auth, sid))["status"] == "active"


# listing
async def test_cursor_pagination(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    other = await new_user(client, "bob")
    ids = [(await create(client, auth, title=f"s{i}"))["id"] for i in range(11)]
    await create(client, other)
    # Ties on last_used_at are ordered by id, and the cursor must cross them.
    tie = utcnow().replace(microsecond=123456) - timedelta(hours=1)
    async with app.state.container.db.session() as s:
        await s.execute(
            update(ChatSession).where(ChatSession.id.in_(ids[2:7])).values(last_used_at=tie)
        )
    async with app.state.container.db.session() as s:
        rows = (
            await s.execute(
                select(ChatSession.id, ChatSession.last_used_at).where(ChatSession.id.in_(ids))
            )
        ).all()
    expected = [r.id for r in sorted(rows, key=lambda r: (r.last_used_at, r.id), reverse=True)]

    for limit in (1, 2, 3, 5, 11, 50):
        pages = await list_all(client, auth, limit=limit)
        assert [s["id"] for s in pages] == expected, limit
    first = (await client.get("/v1/sessions", params={"limit": 4}, headers=auth)).json()
    assert len(first["sessions"]) == 4
    assert first["next_cursor"]
    last = (await client.get("/v1/sessions", params={"limit": 11}, headers=auth)).json()
    assert last["next_cursor"] is None

    # A cursor from one user's listing shows nothing of anyone else's.
    r = await client.get("/v1/sessions", params={"cursor": first["next_cursor"]}, headers=other)
    assert r.json()["sessions"] == []


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor!"},
        {"cursor": _b64(b"\xff\xfe")},
        {"cursor": _b64([1, 2])},
        {"cursor": _b64({"t": "2026-01-01T00:00:00+00:00"})},
        {"cursor": _b64({"t": "2026-01-01T00:00:00", "id": "ses_x"})},
        {"cursor": _b64({"t": "yesterday", "id": "ses_x"})},
        {"cursor": _b64({"t": "2026-01-01T00:00:00+00:00", "id": 5})},
        {"cursor": "x" * 501},
        {"limit": 0},
        {"limit": 201},
        {"status": "archived"},
    ],
)
async def test_bad_list_parameters(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    auth = await new_user(client, "alice")
    response = await client.get("/v1/sessions", params=params, headers=auth)
    detail = assert_envelope(response, 422, "validation_error")
    assert detail["details"][0]["loc"][0] == "query"


async def test_status_filter_and_activity_order(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    a, b, c = [(await create(client, auth, title=t))["id"] for t in "abc"]
    await client.delete(f"/v1/sessions/{b}", headers=auth)
    assert [s["id"] for s in await list_all(client, auth)] == [c, b, a]
    await append(app, owner, a, ("user", "bump"))
    everything = await list_all(client, auth)
    assert [s["id"] for s in everything] == [a, c, b]
    assert everything[0]["message_count"] == 1
    assert aware(everything[0]["last_used_at"]) > aware(everything[0]["created_at"])
    active = await list_all(client, auth, status="active")
    assert [s["id"] for s in active] == [a, c]
    closed = await list_all(client, auth, status="closed")
    assert [(s["id"], s["status"]) for s in closed] == [(b, "closed")]


async def test_listing_is_one_query_per_page(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    start = utcnow() - timedelta(days=1)
    sessions = [
        {
            "id": f"ses_bulk{i:05d}",
            "user_id": owner,
            "title": f"Session {i}",
            "title_explicit": False,
            "status": "closed" if i % 10 == 0 else "active",
            "message_count": 1,
            "next_seq": 1,
            "created_at": start,
            "last_used_at": start + timedelta(seconds=i),
        }
        for i in range(1000)
    ]
    messages = [
        {
            "id": f"msg_bulk{i:05d}",
            "session_id": f"ses_bulk{i:05d}",
            "seq": 0,
            "role": "user",
            "content": f"prompt {i}",
            "modality": "text",
            "artifacts": [],
            "created_at": start,
        }
        for i in range(1000)
    ]
    async with app.state.container.db.session() as s:
        await s.execute(insert(ChatSession), sessions)
        await s.execute(insert(SessionMessage), messages)

    await client.get("/v1/sessions", params={"limit": 1}, headers=auth)  # warm the caches
    with counted(app) as small:
        r = await client.get("/v1/sessions", params={"limit": 1}, headers=auth)
    assert len(r.json()["sessions"]) == 1

    seen: list[str] = []
    cursor = None
    for page in range(10):
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        with counted(app) as statements:
            r = await client.get("/v1/sessions", params=params, headers=auth)
        assert r.status_code == 200
        body = r.json()
        assert len(body["sessions"]) == 100
        assert all(s["message_count"] == 1 for s in body["sessions"])
        seen += [s["id"] for s in body["sessions"]]
        # The same statements whatever the page size: auth, then one SELECT of sessions.
        assert len(statements) == len(small), (page, statements)
        # A login token costs two reads (user, revocation); the page is the third.
        assert len(statements) == 3, statements
        assert [("FROM sessions" in q) for q in statements] == [False, False, True]
        # Summary columns only: prompts and state tokens can be large.
        assert "system_prompt" not in statements[-1]
        assert "state_tokens" not in statements[-1]
        cursor = body["next_cursor"]
    assert cursor is None
    assert seen == [f"ses_bulk{i:05d}" for i in reversed(range(1000))]


# messages
async def test_message_window(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth))["id"]
    other = (await create(client, auth))["id"]
    turns = [("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(25)]
    ids = await append(app, owner, sid, *turns)
    (foreign,) = await append(app, owner, other, ("user", "elsewhere"))

    detail = await get(client, auth, sid)
    assert [m["content"] for m in detail["messages"]] == [f"m{i}" for i in range(25)]
    assert [m["id"] for m in detail["messages"]] == ids
    assert detail["message_count"] == 25
    assert detail["next_before"] is None

    page = await get(client, auth, sid, limit=10)
    assert [m["content"] for m in page["messages"]] == [f"m{i}" for i in range(15, 25)]
    assert page["next_before"] == ids[15]
    page = await get(client, auth, sid, limit=10, before=page["next_before"])
    assert [m["content"] for m in page["messages"]] == [f"m{i}" for i in range(5, 15)]
    assert page["next_before"] == ids[5]
    page = await get(client, auth, sid, limit=10, before=page["next_before"])
    assert [m["content"] for m in page["messages"]] == [f"m{i}" for i in range(5)]
    assert page["next_before"] is None
    exact = await get(client, auth, sid, limit=5, before=ids[5])
    assert [m["id"] for m in exact["messages"]] == ids[:5]
    assert exact["next_before"] is None
    assert (await get(client, auth, sid, before=ids[3]))["messages"] == detail["messages"][:3]
    assert (await get(client, auth, sid, before=ids[0]))["messages"] == []
    assert (await get(client, auth, sid, limit=1000))["messages"] == detail["messages"]

    for params in (
        {"before": foreign},
        {"before": "msg_unknown"},
        {"limit": 0},
        {"limit": 1001},
        {"before": "x" * 41},
    ):
        r = await client.get(f"/v1/sessions/{sid}", params=params, headers=auth)
        assert_envelope(r, 422, "validation_error")


async def test_message_shape_and_artifacts(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice = await new_user(client, "alice")
    bob = await new_user(client, "bob")
    owner, stranger = await user_id(client, alice), await user_id(client, bob)
    artifacts = app.state.container.artifacts
    async with app.state.container.db.session() as s:
        image = await artifacts.save(
            s, owner_id=owner, data=b"png-bytes", type="image", content_type="image/png"
        )
        expired = await artifacts.save(
            s, owner_id=owner, data=b"old", type="preview", content_type="image/png"
        )
        bobs = await artifacts.save(
            s, owner_id=stranger, data=b"bob", type="image", content_type="image/png"
        )
        await s.execute(
            update(Artifact)
            .where(Artifact.id == expired.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    refs = [
        {"id": a, "type": "image", "content_type": "image/png"}
        for a in (image.id, expired.id, bobs.id, "art_missing")
    ]
    sid = (await create(client, alice))["id"]
    await append(app, owner, sid, ("user", "draw a cat"))
    await append(
        app,
        owner,
        sid,
        ("assistant", ""),
        modality="image",
        model="local:tiny-sd",
        provider="local",
        artifacts=[*refs, {"id": 5}, {"type": "image"}],
        finish_reason="stop",
    )

    messages = (await get(client, alice, sid))["messages"]
    prompt, answer = messages
    assert set(prompt) == MESSAGE_KEYS
    assert (prompt["role"], prompt["content"], prompt["modality"]) == ("user", "draw a cat", "text")
    assert (prompt["model"], prompt["provider"], prompt["artifacts"]) == (None, None, [])
    assert (prompt["tool_calls"], prompt["tool_call_id"], prompt["reasoning"]) == (None, None, None)
    assert prompt["id"].startswith("msg_")
    assert aware(prompt["created_at"]) <= aware(answer["created_at"])
    assert (answer["role"], answer["modality"]) == ("assistant", "image")
    assert (answer["model"], answer["provider"]) == ("local:tiny-sd", "local")
    (link,) = answer["artifacts"]  # expired, someone else's and missing ones left out
    assert link["id"] == image.id
    assert set(link) == {"id", "type", "url", "content_type", "size_bytes", "expires_at"}
    assert (link["type"], link["content_type"], link["size_bytes"]) == ("image", "image/png", 9)
    aware(link["expires_at"])
    download = await client.get(link["url"])
    assert download.status_code == 200
    assert download.content == b"png-bytes"


async def test_message_reads_cost_constant_statements(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    artifacts = app.state.container.artifacts
    costs = []
    for turns in (2, 40):
        sid = (await create(client, auth))["id"]
        async with app.state.container.db.session() as s:
            saved = [
                await artifacts.save(
                    s, owner_id=owner, data=b"x", type="image", content_type="image/png"
                )
                for _ in range(turns)
            ]
        for info in saved:
            ref = {"id": info.id, "type": "image", "content_type": "image/png"}
            await append(app, owner, sid, ("assistant", ""), modality="image", artifacts=[ref])
        await get(client, auth, sid)
        with counted(app) as statements:
            detail = await get(client, auth, sid)
        assert sum(len(m["artifacts"]) for m in detail["messages"]) == turns
        assert sum("FROM artifacts" in q for q in statements) == 1, statements
        costs.append(len(statements))
    assert costs[0] == costs[1]


async def test_generation_contract(app: FastAPI, client: httpx.AsyncClient) -> None:
    """What the generation code relies on: seq order, counters, remove, state tokens,
    and a session object carried over from an earlier unit of work."""
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth))["id"]
    service = sessions_of(app)
    db = app.state.container.db
    async with db.session() as s:
        chat = await service.for_generation(s, owner, sid)
        created = chat.last_used_at
        first = await service.append(s, chat, role="user", content="Question one")
        assert (first.seq, chat.next_seq, chat.message_count) == (0, 1, 1)
        assert chat.title == "Question one"
        assert chat.last_used_at > created
    # ``chat`` now belongs to a finished unit of work, as it would after a long generation.
    async with db.session() as s:
        answer = await service.append(
            s,
            chat,
            role="assistant",
            content="Answer",
            model="m",
            provider="p",
            finish_reason="stop",
            request_id="req_1",
        )
        await service.set_state_tokens(s, chat, {"n": 2})
        assert (answer.seq, chat.next_seq, chat.message_count) == (1, 2, 2)
    async with db.session() as s:
        replacement = await service.append(s, chat, role="assistant", content="Better")
        await service.remove(s, chat, answer.id)
        await service.remove(s, chat, answer.id)  # already gone: nothing happens
        await service.remove(s, chat, "msg_unknown")
        assert chat.message_count == 2
    async with db.session() as s:
        history = await service.history(s, sid)
        assert [(m.seq, m.role, m.content) for m in history] == [
            (0, "user", "Question one"),
            (2, "assistant", "Better"),
        ]
        assert history[1].id == replacement.id
        row = await s.get(ChatSession, sid)
        assert row is not None
        assert (row.message_count, row.next_seq, row.state_tokens) == (2, 3, {"n": 2})
        stored = await s.get(SessionMessage, answer.id)
        assert stored is None
    detail = await get(client, auth, sid)
    assert detail["message_count"] == 2
    assert detail["state_tokens"] == {"n": 2}
    assert [m["content"] for m in detail["messages"]] == ["Question one", "Better"]

    async with db.session() as s:
        await service.set_state_tokens(s, chat, None)
    assert (await get(client, auth, sid))["state_tokens"] is None


# retention
async def test_retention(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    now = utcnow()
    names = ["old_closed", "new_closed", "idle", "recent", "old_closed_2"]
    ids = {n: (await create(client, auth, title=n))["id"] for n in names}
    for sid in ids.values():
        await append(app, owner, sid, ("user", "hi"))
    shape = {
        "old_closed": ("closed", now - timedelta(days=40), now - timedelta(days=31)),
        "old_closed_2": ("closed", now - timedelta(days=50), now - timedelta(days=45)),
        "new_closed": ("closed", now - timedelta(days=40), now - timedelta(days=2)),
        "idle": ("active", now - timedelta(days=100), None),
        "recent": ("active", now - timedelta(days=1), None),
    }
    async with app.state.container.db.session() as s:
        for name, (status, used, closed) in shape.items():
            await s.execute(
                update(ChatSession)
                .where(ChatSession.id == ids[name])
                .values(status=status, last_used_at=used, closed_at=closed)
            )

    async def remaining() -> set[str]:
        return {s["title"] for s in await list_all(client, auth)}

    service = sessions_of(app)
    db = app.state.container.db
    # Reading never applies the policy.
    assert await remaining() == set(names)
    async with db.session() as s:
        assert await service.apply_retention(s, closed_days=None, idle_days=None, now=now) == 0
        # Closed sessions go by closed_at, not by their last use.
        assert await service.apply_retention(s, closed_days=60, idle_days=None, now=now) == 0
    assert await remaining() == set(names)

    async with db.session() as s:
        removed = await service.apply_retention(s, closed_days=30, idle_days=None, now=now, batch=1)
        assert removed == 2
    assert await remaining() == {"new_closed", "idle", "recent"}

    # The idle rule spares closed sessions (their own rule decides) and recent ones.
    async with db.session() as s:
        assert await service.apply_retention(s, closed_days=None, idle_days=30, now=now) == 1
    assert await remaining() == {"new_closed", "recent"}
    async with db.session() as s:
        assert await service.apply_retention(s, closed_days=1, idle_days=1, now=now) == 1
        assert await service.apply_retention(s, closed_days=1, idle_days=1, now=now) == 0
    assert await remaining() == {"recent"}
    async with db.session() as s:
        count = await s.scalar(select(func.count()).select_from(SessionMessage))
    assert count == 1


def test_retention_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.session_retention_closed_days is None
    assert settings.session_retention_idle_days is None
    assert settings.session_cleanup_interval_s == 3600
    with pytest.raises(ValueError, match="greater than or equal"):
        Settings(data_dir=tmp_path, session_retention_closed_days=0)
    with pytest.raises(ValueError, match="greater than or equal"):
        Settings(data_dir=tmp_path, session_cleanup_interval_s=59)


# restarts
async def test_sessions_survive_a_restart(settings: Settings) -> None:
    async with running(create_app(settings)) as app, client_for(app) as client:
        auth = await new_user(client, "alice")
        owner = await user_id(client, auth)
        sid = (await create(client, auth, system_prompt="Be brief."))["id"]
        await append(app, owner, sid, ("user", "Remember me"), ("assistant", "I will"))
        closed = (await create(client, auth))["id"]
        await client.delete(f"/v1/sessions/{closed}", headers=auth)
        before = await get(client, auth, sid)
        listing = await list_all(client, auth)
    async with running(create_app(settings)) as app, client_for(app) as client:
        auth = {"Authorization": auth["Authorization"]}
        assert await get(client, auth, sid) == before
        assert await list_all(client, auth) == listing
        await append(app, owner, sid, ("user", "Still here?"))
        after = await get(client, auth, sid)
        assert [m["content"] for m in after["messages"]] == ["Remember me", "I will", "Still here?"]
        assert after["title"] == "Remember me"


async def test_timestamps_are_utc(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    owner = await user_id(client, auth)
    sid = (await create(client, auth))["id"]
    await append(app, owner, sid, ("user", "hi"))
    await client.delete(f"/v1/sessions/{sid}", headers=auth)
    detail = await get(client, auth, sid)
    now = datetime.now(UTC)
    for stamp in (
        detail["created_at"],
        detail["last_used_at"],
        detail["messages"][0]["created_at"],
    ):
        assert now - timedelta(minutes=5) < aware(stamp) <= now
    (summary,) = (await client.get("/v1/sessions", headers=auth)).json()["sessions"]
    aware(summary["created_at"])
    aware(summary["last_used_at"])
