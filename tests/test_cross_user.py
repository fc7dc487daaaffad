"""Another user's objects answer 404, never 403, and are left untouched.

Each case creates an object as user A and names the request user B makes on it.
Later domains (sessions, requests, …) add their rows here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.conftest import assert_envelope, new_user

Creator = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[str]]


async def _api_token(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    response = await client.post("/v1/users/tokens", json={"name": "a"}, headers=auth)
    return str(response.json()["info"]["id"])


async def _provider_key(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    body = {"provider": "deepseek", "api_key": "sk-deepseek-secret-0001"}
    await client.post("/v1/users/provider-keys", json=body, headers=auth)
    return "deepseek"


CASES: list[tuple[str, Creator, str, str, str]] = [
    # (name, create as A, method, path template, listing that must still show it)
    ("api token", _api_token, "DELETE", "/v1/users/tokens/{id}", "/v1/users/tokens"),
    (
        "provider key",
        _provider_key,
        "DELETE",
        "/v1/users/provider-keys/{id}",
        "/v1/users/provider-keys",
    ),
]


@pytest.mark.parametrize(
    ("name", "create", "method", "path", "listing"), CASES, ids=[c[0] for c in CASES]
)
async def test_other_users_objects_are_404(
    client: httpx.AsyncClient, name: str, create: Creator, method: str, path: str, listing: str
) -> None:
    alice = await new_user(client, "alice")
    bob = await new_user(client, "bob")
    object_id = await create(client, alice)
    before = (await client.get(listing, headers=alice)).json()
    response = await client.request(method, path.format(id=object_id), headers=bob)
    assert_envelope(response, 404, "not_found")
    assert (await client.get(listing, headers=alice)).json() == before
    assert object_id not in (await client.get(listing, headers=bob)).text
