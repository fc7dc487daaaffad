"""API tokens with their own limits (API.md §6, §9): set at creation, never wider than
the owner's effective limits, listed, and carried by the token's requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    generate,
    make_settings,
    new_user,
    running,
)
from tests.fixtures.openai_sim import OpenAISim
from tests.users.test_admin import NO_LIMITS

ADMIN = {"X-API-Key": ADMIN_KEY}
OWNER = {
    "rpm": 60,
    "tpm": 10_000,
    "budget_usd": 10.0,
    "budget_period": "day",
    "models": ["openai:*", "local:*"],
}


async def _user_with_limits(
    client: httpx.AsyncClient, name: str, limits: dict[str, Any] | None
) -> dict[str, str]:
    auth = await new_user(client, name)
    if limits is not None:
        user_id = (await client.get("/v1/users/me", headers=auth)).json()["id"]
        put = await client.put(f"/v1/users/{user_id}/limits", json=limits, headers=ADMIN)
        assert put.status_code == 200, put.text
    return auth


async def _token(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/v1/users/tokens", json={"name": "scripted", **body}, headers=auth)


@pytest.fixture
async def gateway(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> AsyncIterator[httpx.AsyncClient]:
    """A server with the OpenAI simulator for everyone and a server default limit."""
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": openai_sim.base_url, "api_key": "sk-server-key-0001"}},
        server_keys_allowed=["*"],
        limits={"rpm": 1000, "max_concurrent": 8},
    )
    app: FastAPI = create_app(settings)
    async with running(app), client_for(app) as client:
        yield client


async def test_a_token_may_narrow_its_owners_limits(client: httpx.AsyncClient) -> None:
    auth = await _user_with_limits(client, "amy", OWNER)
    narrow = {
        "rpm": 10,
        "budget_usd": 1.5,
        "budget_period": "day",
        "models": ["openai:gpt-4o*"],
    }
    made = await _token(client, auth, limits=narrow)
    assert made.status_code == 201, made.text
    expected = {**NO_LIMITS, **narrow}
    assert made.json()["limits"] == expected
    assert made.json()["info"]["limits"] == expected
    listed = (await client.get("/v1/users/tokens", headers=auth)).json()
    assert [(t["id"], t["limits"]) for t in listed] == [(made.json()["id"], expected)]


async def test_a_token_wider_than_its_owner_is_400_naming_the_fields(
    client: httpx.AsyncClient,
) -> None:
    auth = await _user_with_limits(client, "ben", OWNER)
    cases = [
        ({"rpm": 61}, ["rpm"]),
        ({"tpm": 20_000, "models": ["anthropic:*"]}, ["tpm", "models"]),
        ({"budget_usd": 5, "budget_period": "week"}, ["budget_period"]),
        ({"budget_usd": 11}, ["budget_usd", "budget_period"]),  # per month, the default
        ({"models": ["openai:gpt-4o", "ollama:llama3"]}, ["models"]),
    ]
    for limits, fields in cases:
        detail = assert_envelope(
            await _token(client, auth, limits=limits), 400, "invalid_parameter"
        )
        assert detail["message"].startswith(
            "A token's limits can only narrow yours; these would be wider: " + ", ".join(fields)
        ), (limits, detail["message"])
        assert [d["loc"] for d in detail["details"]] == [["body", "limits", f] for f in fields]
    assert (await client.get("/v1/users/tokens", headers=auth)).json() == []


async def test_fields_a_token_leaves_out_stay_its_owners(client: httpx.AsyncClient) -> None:
    """The owner's limits apply to every request of theirs anyway: a token need not
    repeat them, and one without limits of its own is not wider."""
    auth = await _user_with_limits(client, "cal", OWNER)
    made = await _token(client, auth, limits={"max_concurrent": 1})
    assert made.status_code == 201, made.text
    assert made.json()["limits"] == {**NO_LIMITS, "max_concurrent": 1}
    for body in ({}, {"limits": None}, {"limits": {}}):
        plain = await _token(client, auth, **body)
        assert plain.status_code == 201, plain.text
        assert plain.json()["limits"] is None


async def test_invalid_token_limits_are_422(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "dee")
    for limits in ({"rpm": 0}, {"budget_period": "hour"}, {"per_day": 3}, {"models": "local:*"}):
        response = await _token(client, auth, limits=limits)
        detail = assert_envelope(response, 422, "validation_error")
        assert detail["details"][0]["loc"][:2] == ["body", "limits"]


async def test_a_token_made_with_a_limited_token_keeps_its_limits(
    client: httpx.AsyncClient,
) -> None:
    auth = await new_user(client, "eve")
    first = await _token(client, auth, limits={"rpm": 10, "models": ["openai:*"]})
    limited = {"X-API-Key": first.json()["token"]}
    second = await _token(client, limited)
    assert second.status_code == 201, second.text
    assert second.json()["limits"] == {**NO_LIMITS, "rpm": 10, "models": ["openai:*"]}
    narrower = await _token(client, limited, limits={"rpm": 5, "models": ["openai:gpt-4o*"]})
    assert narrower.json()["limits"] == {**NO_LIMITS, "rpm": 5, "models": ["openai:gpt-4o*"]}
    detail = assert_envelope(
        await _token(client, limited, limits={"rpm": 20}), 400, "invalid_parameter"
    )
    assert "rpm" in detail["message"]


async def test_the_server_default_bounds_users_tokens_but_not_admins(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await new_user(gateway, "fay")
    me = (await gateway.get("/v1/users/me", headers=auth)).json()
    assert me["effective_limits"] == {**NO_LIMITS, "rpm": 1000, "max_concurrent": 8}
    too_many = await _token(gateway, auth, limits={"rpm": 1001, "max_concurrent": 9})
    detail = assert_envelope(too_many, 400, "invalid_parameter")
    assert "rpm, max_concurrent" in detail["message"]
    assert (await _token(gateway, auth, limits={"rpm": 1000})).status_code == 201
    admin = await _token(gateway, ADMIN, limits={"rpm": 5000, "max_concurrent": 100})
    assert admin.status_code == 201, admin.text


async def test_a_tokens_allow_list_reaches_its_requests(gateway: httpx.AsyncClient) -> None:
    auth = await new_user(gateway, "gus")
    made = await _token(gateway, auth, limits={"models": ["openai:gpt-4o-mini"]})
    api = {"X-API-Key": made.json()["token"]}
    allowed = await generate(gateway, api, model="openai:gpt-4o-mini", input={"prompt": "hi"})
    assert allowed.status_code == 200, allowed.text
    refused = await generate(gateway, api, model="openai:gpt-4o", input={"prompt": "hi"})
    detail = assert_envelope(refused, 403, "model_not_allowed")
    assert "openai:gpt-4o-mini" in detail["message"]
    # The owner's other credentials are not bound by the token's list.
    assert (
        await generate(gateway, auth, model="openai:gpt-4o", input={"prompt": "hi"})
    ).status_code == 200


async def test_a_users_limits_reach_their_next_request(gateway: httpx.AsyncClient) -> None:
    auth = await new_user(gateway, "hal")
    user_id = (await gateway.get("/v1/users/me", headers=auth)).json()["id"]
    assert (
        await generate(gateway, auth, model="openai:gpt-4o", input={"prompt": "hi"})
    ).status_code == 200
    put = await gateway.put(
        f"/v1/users/{user_id}/limits", json={"models": ["openai:gpt-4o-mini"]}, headers=ADMIN
    )
    assert put.status_code == 200
    refused = await generate(gateway, auth, model="openai:gpt-4o", input={"prompt": "hi"})
    assert_envelope(refused, 403, "model_not_allowed")
    await gateway.patch(f"/v1/users/{user_id}/limits", json={"models": None}, headers=ADMIN)
    assert (
        await generate(gateway, auth, model="openai:gpt-4o", input={"prompt": "hi"})
    ).status_code == 200
