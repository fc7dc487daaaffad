"""GET /v1/requests over HTTP, on both databases: two users and the admin make requests
that the OpenAI simulator answers (one failing); each sees exactly their own, newest
first, an administrator anyone's, and pages, filters and bad input answer exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pluggably.generation.models import RequestRecord
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, new_user, running
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
MINI, FOUR_O = "openai:gpt-4o-mini", "openai:gpt-4o"


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    sim: OpenAISim
    alice: dict[str, str]  # login
    bob: dict[str, str]  # API token
    ids: dict[str, str]  # username -> user id ("admin": the admin key's account)
    made: dict[str, list[str]]  # username -> request ids, oldest first
    bob_token_id: str


async def _ask(world: World, who: str, model: str = MINI) -> None:
    headers = {"alice": world.alice, "bob": world.bob, "admin": ADMIN}[who]
    answer = await generate(world.client, headers, model=model, input={"prompt": "hello there"})
    assert answer.status_code == 200, answer.text
    world.made[who].append(answer.json()["request_id"])


async def _fail(world: World) -> None:
    """A request of alice's that the upstream refuses; its id is read from the records
    (an error answer names the HTTP request, not the record)."""
    world.sim.fail_next(status=400)
    answer = await generate(world.client, world.alice, model=MINI, input={"prompt": "break"})
    assert answer.status_code == 400, answer.text
    records = world.app.state.container.records
    await records.flush()
    async with world.app.state.container.db.session() as session:
        found = await session.execute(
            select(RequestRecord.id).where(RequestRecord.status == "failed")
        )
        world.made["alice"].append(found.scalar_one())


async def _user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/v1/users/me", headers=headers)).json()["id"])


@pytest.fixture
async def world(tmp_path: Any, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[World]:
    """alice: two answers, then one failure; bob (with an API token): one; the admin: one."""
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice, bob_login = await new_user(client, "alice"), await new_user(client, "bob")
        for headers in (alice, bob_login):
            key = {"provider": "openai", "api_key": "sk-users-own-key-77"}
            added = await client.post("/v1/users/provider-keys", json=key, headers=headers)
            assert added.status_code == 201, added.text
        token = await client.post("/v1/users/tokens", json={"name": "sdk"}, headers=bob_login)
        bob = {"Authorization": f"Bearer {token.json()['token']}"}
        ids = {
            n: await _user_id(client, h)
            for n, h in (("alice", alice), ("bob", bob), ("admin", ADMIN))
        }
        made: dict[str, list[str]] = {"alice": [], "bob": [], "admin": []}
        found = World(app, client, openai_sim, alice, bob, ids, made, token.json()["info"]["id"])
        for who, model in (("alice", MINI), ("alice", FOUR_O), ("bob", MINI), ("admin", MINI)):
            await _ask(found, who, model)
        await _fail(found)
        yield found


async def listed(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    answer = await client.get("/v1/requests", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [r["request_id"] for r in body["requests"]]


def newest_first(*groups: list[str]) -> list[str]:
    """The ids in the order they were made, reversed (the fixture made them in turn)."""
    return list(reversed([i for group in groups for i in group]))


async def test_each_user_sees_exactly_their_own_requests_newest_first(world: World) -> None:
    alices = await listed(world.client, world.alice)
    assert ids_of(alices) == list(reversed(world.made["alice"]))
    assert alices["next_cursor"] is None
    assert ids_of(await listed(world.client, world.bob)) == world.made["bob"]
    # Naming oneself is the default.
    again = await listed(world.client, world.alice, user_id=world.ids["alice"])
    assert ids_of(again) == ids_of(alices)


async def test_a_listed_request_carries_its_record(world: World) -> None:
    body = await listed(world.client, world.bob)
    (row,) = body["requests"]
    record = (await world.client.get(f"/v1/requests/{row['request_id']}", headers=world.bob)).json()
    usage = record["result"]["usage"]
    assert row == {
        "request_id": world.made["bob"][0],
        "status": "completed",
        "model": MINI,
        "provider": "openai",
        "modality": "text",
        "user_id": world.ids["bob"],
        "token_id": world.bob_token_id,
        "created_at": record["created_at"],
        "started_at": record["started_at"],
        "finished_at": record["finished_at"],
        "latency_ms": row["latency_ms"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": 3,  # "Echo: hello there"
        "cost_usd": row["cost_usd"],
        "error_code": None,
    }
    assert row["latency_ms"] > 0
    assert row["cost_usd"] > 0  # gpt-4o-mini is priced
    (failed,) = (await listed(world.client, world.alice, status="failed"))["requests"]
    assert (failed["status"], failed["error_code"], failed["model"]) == (
        "failed",
        "invalid_parameter",  # the upstream's 400
        None,
    )


async def test_a_user_may_not_list_another_users_or_everyones_requests(world: World) -> None:
    for whose in (world.ids["bob"], world.ids["admin"], "*"):
        denied = await world.client.get(
            "/v1/requests", params={"user_id": whose}, headers=world.alice
        )
        assert_envelope(denied, 403, "forbidden")
    unknown = await world.client.get(
        "/v1/requests", params={"user_id": "usr_nobody"}, headers=world.bob
    )
    assert_envelope(unknown, 403, "forbidden")
    anonymous = await world.client.get("/v1/requests")
    assert_envelope(anonymous, 401, "unauthorized")


async def test_an_administrator_sees_their_own_by_default_one_users_or_everyones(
    world: World,
) -> None:
    assert ids_of(await listed(world.client, ADMIN)) == world.made["admin"]
    alices = await listed(world.client, ADMIN, user_id=world.ids["alice"])
    assert ids_of(alices) == list(reversed(world.made["alice"]))
    everyone = await listed(world.client, ADMIN, user_id="*")
    made = world.made
    order = [*made["alice"][:2], *made["bob"], *made["admin"], made["alice"][2]]
    assert ids_of(everyone) == list(reversed(order))
    assert {r["user_id"] for r in everyone["requests"]} == set(world.ids.values())
    missing = await world.client.get(
        "/v1/requests", params={"user_id": "usr_nobody"}, headers=ADMIN
    )
    assert_envelope(missing, 404, "not_found")


async def test_status_and_model_filters_narrow_the_list(world: World) -> None:
    alice = world.made["alice"]
    failed = await listed(world.client, world.alice, status="failed")
    assert ids_of(failed) == [alice[2]]
    completed = await listed(world.client, world.alice, status="completed")
    assert ids_of(completed) == [alice[1], alice[0]]
    assert (await listed(world.client, world.alice, status="cancelled"))["requests"] == []
    assert ids_of(await listed(world.client, world.alice, model=FOUR_O)) == [alice[1]]
    everyones_mini = await listed(world.client, ADMIN, user_id="*", model=MINI, status="completed")
    assert ids_of(everyones_mini) == [world.made["admin"][0], world.made["bob"][0], alice[0]]
    bad = await world.client.get("/v1/requests", params={"status": "done"}, headers=world.alice)
    detail = assert_envelope(bad, 422, "validation_error")
    assert detail["details"][0]["loc"] == ["query", "status"]


async def test_a_request_waiting_in_a_local_queue_is_listed_as_queued(world: World) -> None:
    """Its record says running (written when it starts); this process's queue knows better."""
    container = world.app.state.container
    waiting = container.records.start(world.ids["alice"], "text", stream=False)
    container.generation.live.open(waiting, world.ids["alice"]).status = "queued"
    running_one = container.records.start(world.ids["alice"], "text", stream=False)
    container.generation.live.open(running_one, world.ids["alice"])
    statuses = {
        r["request_id"]: r["status"] for r in (await listed(world.client, world.alice))["requests"]
    }
    assert (statuses[waiting], statuses[running_one]) == ("queued", "running")
    assert ids_of(await listed(world.client, world.alice, status="queued")) == [waiting]
    assert ids_of(await listed(world.client, world.alice, status="running")) == [running_one]
    for request_id in (waiting, running_one):
        container.generation.live.close(request_id, "cancelled")
        await container.records.finish(request_id, status="cancelled")


async def test_pages_follow_the_cursor_without_gaps_or_repeats(world: World) -> None:
    everything = ids_of(await listed(world.client, ADMIN, user_id="*"))
    assert len(everything) == 5
    seen: list[str] = []
    pages: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"user_id": "*", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        body = await listed(world.client, ADMIN, **params)
        seen += ids_of(body)
        pages.append(len(body["requests"]))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert seen == everything
    # A filtered list pages within its filter.
    first = await listed(world.client, world.alice, limit=1, status="completed")
    second = await listed(
        world.client, world.alice, limit=1, status="completed", cursor=first["next_cursor"]
    )
    assert ids_of(first) + ids_of(second) == [world.made["alice"][1], world.made["alice"][0]]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", "eyJ0IjogMSwgImlkIjogMn0"])
async def test_a_bad_cursor_is_a_validation_error(world: World, cursor: str) -> None:
    answer = await world.client.get("/v1/requests", params={"cursor": cursor}, headers=world.alice)
    detail = assert_envelope(answer, 422, "validation_error")
    assert detail["details"][0]["loc"] == ["query", "cursor"]


async def test_limit_is_one_to_two_hundred(world: World) -> None:
    for limit in (0, 201, -1):
        answer = await world.client.get("/v1/requests", params={"limit": limit}, headers=ADMIN)
        detail = assert_envelope(answer, 422, "validation_error")
        assert detail["details"][0]["loc"] == ["query", "limit"]
    one = await listed(world.client, ADMIN, user_id="*", limit=1)
    assert (len(one["requests"]), one["next_cursor"] is not None) == (1, True)
    most = await listed(world.client, ADMIN, user_id="*", limit=200)
    assert (len(most["requests"]), most["next_cursor"]) == (5, None)


async def test_the_list_is_documented_in_openapi(world: World) -> None:
    spec = (await world.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/requests"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/RequestList"}
    assert {"401", "403", "404", "422"} <= set(operation["responses"])
    params = {p["name"] for p in operation["parameters"]}
    assert params == {"status", "model", "user_id", "limit", "cursor"}
    summary = spec["components"]["schemas"]["RequestSummary"]["properties"]
    assert set(summary) == {
        "request_id", "status", "model", "provider", "modality", "user_id", "token_id",
        "created_at", "started_at", "finished_at", "latency_ms", "prompt_tokens",
        "completion_tokens", "cost_usd", "error_code",
    }  # fmt: skip
    # The routes of one request are still there, after the list.
    assert "/v1/requests/{request_id}" in spec["paths"]
