"""Who may call what, for every route of the app (API.md §1).

Every operation of ``/openapi.json`` is classified below, and a new route that is not
fails ``test_every_route_is_classified``, so no route can skip the matrix:

- ``OWNED``: touches one object a user owns. Another user gets 404 with the object's
  code, nothing upstream is called, and the owner's object is unchanged.
- ``ADMIN``: shared state. A plain user, and an admin's token without the ``admin``
  scope, get 403 ``forbidden``, and nothing changes.
- ``SELF``: the caller's own collections, profile, catalogs and generation. What they
  answer another user never shows the first user's objects or secrets.
- ``PUBLIC``: no credential (the signed artifact link is its own credential).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, new_user, running
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"
ALICE_SECRET = "sk-deepseek-alice-secret-q7z9"
ALICE_TITLE = "alice-private-title-7f3a"
ALICE_PROMPT = "alice-private-prompt-91c2"


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the OpenAPI path; {placeholders} are filled from the world
    body: dict[str, Any] | None = None
    code: str = ""  # OWNED: the 404 code the other user gets
    query: str = ""
    shape: str = "native"  # the error shape of the route's surface: native, openai, ollama


GEN = {"model": MODEL, "input": {"prompt": "hi"}, "wait": True}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
EMBEDDER = "openai:text-embedding-3-small"
RESPONSE = "/openai/v1/responses/{response_id}"

OWNED = [
    Call("GET", "/v1/sessions/{session_id}", code="session_not_found"),
    Call("PUT", "/v1/sessions/{session_id}", {"title": "mine now"}, "session_not_found"),
    Call("PATCH", "/v1/sessions/{session_id}", {"title": "mine now"}, "session_not_found"),
    Call("DELETE", "/v1/sessions/{session_id}", code="session_not_found"),
    Call("DELETE", "/v1/sessions/{session_id}", code="session_not_found", query="?purge=true"),
    Call("POST", "/v1/sessions/{session_id}/reset", code="session_not_found"),
    Call("POST", "/v1/sessions/{session_id}/generate", GEN, "session_not_found"),
    Call("POST", "/v1/sessions/{session_id}/regenerate", {}, "session_not_found"),
    # The session named in the body rather than the path.
    Call("POST", "/v1/generate", {**GEN, "session_id": "{session_id}"}, "session_not_found"),
    Call("GET", "/v1/requests/{request_id}/status", code="request_not_found"),
    Call("GET", "/v1/requests/{request_id}", code="request_not_found"),
    Call("GET", "/v1/requests/{request_id}/events", code="request_not_found"),
    Call("POST", "/v1/requests/{request_id}/cancel", code="request_not_found"),
    Call("DELETE", "/v1/users/tokens/{token_id}", code="not_found"),
    Call("DELETE", "/v1/users/provider-keys/{provider}", code="not_found"),
    Call("GET", RESPONSE, code="not_found", shape="openai"),
    Call("GET", RESPONSE + "/input_items", code="not_found", shape="openai"),
    Call("DELETE", RESPONSE, code="not_found", shape="openai"),
]

ADMIN_ONLY = [
    Call("GET", "/metrics"),
    Call("GET", "/v1/users"),
    Call("GET", "/v1/users/{user_id}"),
    Call("PATCH", "/v1/users/{user_id}", {"disabled": True}),
    Call("GET", "/v1/users/{user_id}/limits"),
    Call("PUT", "/v1/users/{user_id}/limits", {"rpm": 1}),
    Call("PATCH", "/v1/users/{user_id}/limits", {"rpm": 1}),
    Call("GET", "/v1/users/invites"),
    Call("POST", "/v1/users/invites", {}),
    Call("DELETE", "/v1/users/invites/{invite_id}"),
    Call("POST", "/v1/models/{model_id}/load", {"wait": False}),
    Call("POST", "/v1/models/{model_id}/unload"),
    Call("POST", "/v1/models/{model_id}/default"),
    Call("DELETE", "/v1/models/{model_id}"),
    Call("POST", "/v1/models/download", {"source": {"type": "huggingface", "id": "acme/x"}}),
    Call("GET", "/v1/jobs"),
    Call("GET", "/v1/jobs/{job_id}"),
    Call("DELETE", "/v1/jobs/{job_id}"),
    Call("GET", "/v1/jobs/{job_id}/events"),
    Call("GET", "/v1/storage"),
    Call("POST", "/v1/storage/cleanup", {"dry_run": False}),
    Call("POST", "/api/pull", {"model": "hf.co/acme/x:Q4_K_M"}, shape="ollama"),
    Call("DELETE", "/api/delete", {"model": "nothing/here"}, shape="ollama"),
    Call("POST", "/api/copy", {"source": "a", "destination": "b"}, shape="ollama"),
    Call("POST", "/api/create", {"model": "x"}, shape="ollama"),
    Call("POST", "/api/push", {"model": "x"}, shape="ollama"),
]

SELF = [
    Call("GET", "/v1/users/me"),
    Call("PATCH", "/v1/users/me", {"display_name": "bob"}),
    Call("PUT", "/v1/users/me", {"display_name": "bob"}),
    Call(
        "POST",
        "/v1/users/change-password",
        {"current_password": "x" * 12, "new_password": "y" * 12},
    ),
    Call("POST", "/v1/users/logout"),
    Call("GET", "/v1/users/tokens"),
    Call("POST", "/v1/users/tokens", {"name": "b"}),
    Call("GET", "/v1/users/provider-keys"),
    Call("POST", "/v1/users/provider-keys", {"provider": "groq", "api_key": "gsk-bob-000001"}),
    Call("POST", "/v1/sessions", {}),
    Call("GET", "/v1/sessions"),
    Call("GET", "/v1/sessions", query="?status=active&limit=200"),
    Call("POST", "/v1/generate", GEN),
    Call("GET", "/v1/usage", query="?group_by=token"),
    Call("GET", "/v1/usage.csv", query="?group_by=user"),
    Call("GET", "/v1/features"),
    Call("GET", "/v1/providers"),
    Call("GET", "/v1/models"),
    Call("GET", "/v1/models/loaded"),
    Call("GET", "/v1/models/search", query="?query=alice"),
    Call("GET", "/v1/models/{model_id}"),
    Call("GET", "/v1/models/{model_id}/status"),
    Call("GET", "/v1/schema"),
    Call("POST", "/openai/v1/chat/completions", CHAT),
    Call("POST", "/openai/v1/completions", {"model": MODEL, "prompt": "hi"}),
    Call("POST", "/openai/v1/images/generations", {"model": MODEL, "prompt": "a cat"}),
    Call("GET", "/openai/v1/models"),
    Call("GET", "/openai/v1/models/{model_id}"),
    Call("POST", "/anthropic/v1/messages", {**CHAT, "max_tokens": 16}),
    Call("POST", "/anthropic/v1/messages/count_tokens", CHAT),
    Call("POST", "/openai/v1/embeddings", {"model": EMBEDDER, "input": "hi"}),
    Call("POST", "/openai/v1/responses", {"model": MODEL, "input": "hi"}),
    Call("POST", "/api/chat", {**CHAT, "stream": False}),
    Call("POST", "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}),
    Call("POST", "/api/embed", {"model": EMBEDDER, "input": "hi"}),
    Call("POST", "/api/embeddings", {"model": EMBEDDER, "prompt": "hi"}),
    Call("GET", "/api/tags"),
    Call("POST", "/api/show", {"model": MODEL}),
    Call("GET", "/api/ps"),
    Call("GET", "/v1/requests"),
]

PUBLIC = [
    Call("GET", "/health"),
    Call("GET", "/ready"),
    Call("GET", "/version"),
    Call("POST", "/v1/users/register"),
    Call("POST", "/v1/users/login"),
    Call("GET", "/v1/artifacts/{artifact_id}"),  # the signed link is the credential
    Call("GET", "/api/version"),  # Ollama clients probe it before anything else
    Call("GET", "/"),  # "Ollama is running", for the same clients
    # The web console's own session: the cookie it sets is the credential afterwards.
    Call("GET", "/ui/api/bootstrap"),
    Call("POST", "/ui/api/session"),
    Call("DELETE", "/ui/api/session"),
    Call("POST", "/ui/api/setup"),
]


def _key(call: Call) -> tuple[str, str]:
    return call.method, call.path


def assert_error(response: httpx.Response, status: int, code: str, shape: str) -> None:
    """The error in the shape of the route's surface, with the expected code."""
    if shape == "native":
        assert_envelope(response, status, code)
        return
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    if shape == "openai":
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == code
        assert body["error"]["message"]
    else:  # Ollama: the message alone
        assert isinstance(body["error"], str)
        assert body["error"]


async def test_every_route_is_classified(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    classified = {_key(c) for c in OWNED + ADMIN_ONLY + SELF + PUBLIC}
    unclassified = sorted(operations - classified)
    where = "tests/api/test_cross_user.py"
    assert not unclassified, f"classify these routes in {where}: {unclassified}"
    assert not classified - operations, sorted(classified - operations)  # stale rows
    owned = {_key(c) for c in OWNED}
    for group in (ADMIN_ONLY, SELF, PUBLIC):
        # A route in OWNED may also be SELF (/v1/generate without a session); never both
        # admin and anything else.
        assert not {_key(c) for c in group} & owned or group is SELF
    assert len(operations) >= 59
    # The document says which need a credential, and how to give one.
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    public = {_key(c) for c in PUBLIC}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            expected = (
                None if (method.upper(), path) in public else [{"ApiKey": []}, {"Bearer": []}]
            )
            assert operation.get("security") == expected, (method, path)


# the world


@pytest.fixture
async def world_app(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim, hf_hub: FakeHub
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        database_url,
        hf_endpoint=hf_hub.url,
        providers={"openai": {"base_url": openai_sim.base_url, "api_key": "sk-server-0000001"}},
        server_keys_allowed=["*"],
    )
    async with running(create_app(settings)) as app:
        yield app


@dataclass
class World:
    alice: dict[str, str]
    bob: dict[str, str]
    ids: dict[str, str]


async def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    return data


async def _build(client: httpx.AsyncClient) -> World:
    alice = await new_user(client, "alice-cross")
    bob = await new_user(client, "bob-cross")
    chat = await _ok(
        await client.post("/v1/sessions", json={"title": ALICE_TITLE}, headers=alice), 201
    )
    turn = {"model": MODEL, "input": {"prompt": ALICE_PROMPT}, "wait": True}
    answered = await _ok(
        await client.post(f"/v1/sessions/{chat['id']}/generate", json=turn, headers=alice)
    )
    token = await _ok(await client.post("/v1/users/tokens", json={"name": "a"}, headers=alice), 201)
    key = {"provider": "deepseek", "api_key": ALICE_SECRET}
    await _ok(await client.post("/v1/users/provider-keys", json=key, headers=alice), 201)
    invite = await _ok(await client.post("/v1/users/invites", json={}, headers=ADMIN), 201)
    stored = await _ok(
        await client.post(
            "/openai/v1/responses", json={"model": MODEL, "input": ALICE_PROMPT}, headers=alice
        )
    )
    return World(
        alice,
        bob,
        {
            "session_id": chat["id"],
            "request_id": answered["request_id"],
            "token_id": token["info"]["id"],
            "provider": "deepseek",
            "invite_id": invite["info"]["id"],
            "model_id": "nothing/here",
            "job_id": "job-does-not-exist",
            "response_id": stored["id"],
            "user_id": (await _ok(await client.get("/v1/users/me", headers=alice)))["id"],
        },
    )


def _fill(call: Call, ids: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
    path = call.path
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    body = call.body
    if body and body.get("session_id") == "{session_id}":
        body = {**body, "session_id": ids["session_id"]}
    return path + call.query, body


async def _alice_view(client: httpx.AsyncClient, world: World) -> list[Any]:
    """Everything Alice can see of her objects."""
    a, ids = world.alice, world.ids
    return [
        (await client.get(path, headers=a)).json()
        for path in (
            f"/v1/sessions/{ids['session_id']}",
            "/v1/sessions",
            f"/v1/requests/{ids['request_id']}",
            "/v1/users/tokens",
            "/v1/users/provider-keys",
            "/v1/users/me",
            f"/openai/v1/responses/{ids['response_id']}",
        )
    ]


async def test_other_users_objects_are_404(world_app: FastAPI, openai_sim: OpenAISim) -> None:
    async with client_for(world_app) as client:
        world = await _build(client)
        before = await _alice_view(client, world)
        upstream_calls = len(openai_sim.requests)
        for call in OWNED:
            path, body = _fill(call, world.ids)
            response = await client.request(call.method, path, json=body, headers=world.bob)
            where = f"{call.method} {path}"
            assert response.status_code == 404, (where, response.text)
            assert_error(response, 404, call.code, call.shape)
            for private in (ALICE_TITLE, ALICE_PROMPT, ALICE_SECRET):
                assert private not in response.text, where
            assert await _alice_view(client, world) == before, where
            assert len(openai_sim.requests) == upstream_calls, where
        # Alice still reaches every one of them (the 404s were about Bob, not the ids).
        for call in OWNED:
            if call.method == "GET":
                path, _ = _fill(call, world.ids)
                assert (await client.get(path, headers=world.alice)).status_code == 200, path


async def test_admin_routes_refuse_users(world_app: FastAPI) -> None:
    async with client_for(world_app) as client:
        world = await _build(client)
        callers = {"plain user": world.bob}
        for scopes in (["read"], ["write"], ["read", "write"]):
            made = await _ok(
                await client.post(
                    "/v1/users/tokens",
                    json={"name": "-".join(scopes), "scopes": scopes},
                    headers=ADMIN,
                ),
                201,
            )
            callers[f"admin token {scopes}"] = {"X-API-Key": made["token"]}
        made = await _ok(
            await client.post(
                "/v1/users/tokens", json={"name": "r", "scopes": ["read"]}, headers=world.bob
            ),
            201,
        )
        callers["user read token"] = {"X-API-Key": made["token"]}
        invites = (await client.get("/v1/users/invites", headers=ADMIN)).json()
        jobs = (await client.get("/v1/jobs", headers=ADMIN)).json()
        for call in ADMIN_ONLY:
            path, body = _fill(call, world.ids)
            for who, headers in callers.items():
                response = await client.request(call.method, path, json=body, headers=headers)
                assert response.status_code == 403, (who, call.method, path, response.text)
                assert_error(response, 403, "forbidden", call.shape)
        assert (await client.get("/v1/users/invites", headers=ADMIN)).json() == invites
        assert (await client.get("/v1/jobs", headers=ADMIN)).json() == jobs
        # The same calls with the admin key pass the role check (whatever they answer then).
        for call in ADMIN_ONLY:
            path, body = _fill(call, world.ids)
            if call.method == "GET" and "{" not in call.path:
                assert (await client.get(path, headers=ADMIN)).status_code == 200, path


async def test_read_scoped_tokens_cannot_write_owned_objects(world_app: FastAPI) -> None:
    async with client_for(world_app) as client:
        world = await _build(client)
        made = await _ok(
            await client.post(
                "/v1/users/tokens", json={"name": "r", "scopes": ["read"]}, headers=world.alice
            ),
            201,
        )
        reader = {"X-API-Key": made["token"]}
        before = await _alice_view(client, world)
        for call in OWNED:
            path, body = _fill(call, world.ids)
            response = await client.request(call.method, path, json=body, headers=reader)
            if call.method == "GET":
                assert response.status_code == 200, (path, response.text)
            else:
                assert_error(response, 403, "forbidden", call.shape)
        after = await _alice_view(client, world)
        assert after[:3] == before[:3]


async def test_nothing_shared_shows_another_users_objects(world_app: FastAPI) -> None:
    async with client_for(world_app) as client:
        world = await _build(client)
        token = await _ok(
            await client.post("/v1/users/tokens", json={"name": "b"}, headers=world.bob), 201
        )
        bob = {"X-API-Key": token["token"]}  # logout/change-password do not end it
        alice_me = (await client.get("/v1/users/me", headers=world.alice)).json()
        markers = [
            world.ids["session_id"],
            world.ids["request_id"],
            world.ids["token_id"],
            world.ids["response_id"],
            alice_me["id"],
            "alice-cross",
            ALICE_TITLE,
            ALICE_PROMPT,
            ALICE_SECRET,
            ALICE_SECRET[-4:] + '"',  # not even the masked tail
        ]
        ids = {**world.ids, "model_id": MODEL}
        for call in SELF:
            path, body = _fill(call, ids)
            response = await client.request(call.method, path, json=body, headers=bob)
            assert response.status_code < 500, (call.method, path, response.text)
            for marker in markers:
                assert marker not in response.text, (marker, call.method, path)
