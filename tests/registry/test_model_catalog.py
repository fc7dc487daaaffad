"""GET /v1/models merges the provider models each user can call, with availability."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, assert_envelope, client_for, new_user, running
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}


async def _all(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[Any]:
    """Every page, following next_cursor."""
    models: list[Any] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/models", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        models += page["models"]
        cursor = page["next_cursor"]
        if cursor is None:
            return models


async def test_provider_models_are_listed_with_their_availability(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    free = make_openai_sim(models=["tiny-free"])
    app = gen_app(
        tmp_path,
        database_url,
        openai_sim,
        endpoints={
            "homelab": {"base_url": free.base_url, "api_key": "sk-h-0001", "models": ["tiny-free"]}
        },
    )
    async with running(app), client_for(app) as client:
        user = await new_user(client, "browser")
        # No key of their own: only the operator endpoint, discovered.
        listed = {m["id"]: m for m in await _all(client, user)}
        assert list(listed) == ["homelab:tiny-free"]
        entry = listed["homelab:tiny-free"]
        assert (entry["format"], entry["source"], entry["modality"], entry["version"]) == (
            "remote",
            None,
            "text",
            "latest",
        )
        assert entry["availability"] == {
            "provider": "homelab",
            "access": "available",
            "credits_status": {"provider": "homelab", "status": "available"},
        }
        # Naming a provider they cannot call shows its default as locked.
        locked = await _all(client, user, provider="anthropic")
        assert [(m["id"], m["availability"]["access"]) for m in locked] == [
            ("anthropic:claude-3-5-haiku-latest", "locked")
        ]

        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-browser-0001"},
            headers=user,
        )
        ids = [m["id"] for m in await _all(client, user, limit=2)]  # pages across both phases
        generators = sorted(f"openai:{m}" for m in openai_sim.models if "embedding" not in m)
        assert ids == ["homelab:tiny-free", *generators]
        embedders = {m["id"] for m in await _all(client, user, modality="embedding")}
        assert embedders == {"openai:text-embedding-3-small", "openai:text-embedding-ada-002"}
        images = {m["id"] for m in await _all(client, user, modality="image")}
        assert images == {"openai:dall-e-2", "openai:dall-e-3", "openai:gpt-image-1"}
        assert [m["id"] for m in await _all(client, user, q="4O-MINI")] == ["openai:gpt-4o-mini"]
        assert await _all(client, user, status="failed") == []
        assert await _all(client, user, provider="local") == []

        # The list could not be read (upstream down): the default model, access unknown.
        calls = len(openai_sim.requests_to("/v1/models"))
        await _all(client, user, discover="false")
        assert len(openai_sim.requests_to("/v1/models")) == calls  # not asked
        no_discovery = {m["id"]: m for m in await _all(client, user, discover="false")}
        assert no_discovery["openai:gpt-4o-mini"]["availability"]["access"] == "unknown"

        bad = await client.get("/v1/models", params={"cursor": "eyJ4IjoxfQ"}, headers=user)
        assert_envelope(bad, 422, "validation_error")


async def test_registry_models_come_first_then_remote(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        gguf = tmp_path / "data" / "models" / "zz-local.gguf"
        gguf.parent.mkdir(parents=True, exist_ok=True)
        gguf.write_bytes(b"GGUF" + b"\0" * 64)
    app = gen_app(tmp_path, database_url, openai_sim)  # discovered at startup
    async with running(app), client_for(app) as client:
        models = await _all(client, ADMIN, limit=1)
        providers = [m["provider"] for m in models]
        assert providers[0] == "local"
        assert set(providers[1:]) == {"openai"}  # the admin may use the server key
        assert models[0]["availability"]["access"] == "available"
