"""The PlugAI clients (the original Python SDK and its Dart twin) work unchanged: the
account and model routes answer the JSON shapes those clients send and parse (issue #14).

The checks below are written from what those clients require of each answer (which
fields must be there, with which JSON type and which values), not from their code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from tests.conftest import (
    ADMIN_KEY,
    PASSWORD,
    assert_envelope,
    client_for,
    invite,
    new_user,
    register,
    running,
)
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.lifecycle.test_scheduler import World

ADMIN = {"X-API-Key": ADMIN_KEY}
LOCAL = "local/zz-local"
REFERENCE_MODALITIES = {"text", "image", "3d"}


def local_model_app(tmp_path: Path, database_url: str, sim: OpenAISim) -> FastAPI:
    """An app with one GGUF (no version in its name or header) in its models directory."""
    gguf = tmp_path / "data" / "models" / "zz-local.gguf"
    gguf.parent.mkdir(parents=True, exist_ok=True)
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    return gen_app(tmp_path, database_url, sim)


def assert_timestamp(value: Any) -> None:
    assert isinstance(value, str)
    assert value.endswith(("Z", "+00:00")), value


def assert_reference_model_info(entry: dict[str, Any]) -> None:
    """What the PlugAI Python client's model entry requires: a string version, one of its
    three modalities, a source it knows (or none), availability naming the provider."""
    assert isinstance(entry["id"], str)
    assert isinstance(entry["name"], str)
    assert isinstance(entry["version"], str)
    assert entry["modality"] in REFERENCE_MODALITIES
    assert isinstance(entry["provider"], str)
    assert entry["status"] in {"available", "downloading", "failed", "disabled", "evicted"}
    source = entry["source"]
    if source is not None:
        assert source["type"] in {"huggingface", "url", "local"}
        assert isinstance(source["uri"], str)
    availability = entry["availability"]
    assert availability["provider"] == entry["provider"]
    assert availability["access"] in {"available", "locked", "unknown"}
    credits = availability["credits_status"]
    if credits is not None:
        assert isinstance(credits["provider"], str)
        assert credits["status"] in {"available", "exhausted", "unknown"}


async def user_with_openai_key(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    user = await new_user(client, name)
    stored = await client.post(
        "/v1/users/provider-keys",
        json={"provider": "openai", "credential_type": "api_key", "api_key": "sk-own-key-0001"},
        headers=user,
    )
    assert stored.status_code == 201, stored.text
    return user


# -- accounts ------------------------------------------------------------------------------


async def test_a_token_created_without_a_name_carries_its_fields_at_the_top_and_in_info(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "dart-user")
    made = await client.post("/v1/users/tokens", json={}, headers=user)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["token"].startswith("plg_")
    info = body["info"]
    assert info["name"] == "API token"
    assert info["scopes"] == ["read", "write"]
    assert_timestamp(info["created_at"])
    assert (info["last_used_at"], info["expires_at"]) == (None, None)
    # The Dart client reads the token's fields beside the secret.
    assert {k: body[k] for k in info} == info


async def test_the_token_list_is_a_bare_json_list_of_token_info(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "lister")
    made = (await client.post("/v1/users/tokens", json={"name": "laptop"}, headers=user)).json()
    listed = await client.get("/v1/users/tokens", headers=user)
    assert listed.status_code == 200
    assert listed.json() == [made["info"]]


async def test_revoking_a_token_answers_the_revoked_token_as_json(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "revoker")
    made = (await client.post("/v1/users/tokens", json={"name": "ci"}, headers=user)).json()
    revoked = await client.delete(f"/v1/users/tokens/{made['info']['id']}", headers=user)
    assert revoked.status_code == 200
    assert revoked.headers["content-type"] == "application/json"
    body = revoked.json()
    assert body["revoked"] is True
    assert_timestamp(body["revoked_at"])
    assert {k: body[k] for k in made["info"]} == made["info"]
    assert made["token"] not in revoked.text
    gone = await client.get("/v1/users/me", headers={"X-API-Key": made["token"]})
    assert_envelope(gone, 401, "unauthorized")
    assert (await client.get("/v1/users/tokens", headers=user)).json() == []


async def test_the_provider_key_list_is_a_bare_json_list_of_masked_keys(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "keeper")
    stored = await client.post(
        "/v1/users/provider-keys",
        json={
            "provider": "groq",
            "credential_type": "api_key",
            "api_key": "gsk_client_secret_key_0001",
        },
        headers=user,
    )
    assert stored.status_code == 201, stored.text
    listed = await client.get("/v1/users/provider-keys", headers=user)
    assert listed.status_code == 200
    assert listed.json() == [stored.json()]
    (key,) = listed.json()
    assert (key["provider"], key["credential_type"], key["masked_key"]) == (
        "groq",
        "api_key",
        "gsk…0001",
    )
    assert isinstance(key["id"], str)
    assert_timestamp(key["created_at"])
    assert "gsk_client_secret_key_0001" not in listed.text


async def test_removing_a_provider_key_answers_the_removed_key_masked(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "remover")
    stored = await client.post(
        "/v1/users/provider-keys",
        json={"provider": "groq", "api_key": "gsk_client_secret_key_0002"},
        headers=user,
    )
    removed = await client.delete("/v1/users/provider-keys/groq", headers=user)
    assert removed.status_code == 200
    assert removed.json() == {**stored.json(), "deleted": True}
    assert "gsk_client_secret_key_0002" not in removed.text
    assert (await client.get("/v1/users/provider-keys", headers=user)).json() == []
    again = await client.delete("/v1/users/provider-keys/groq", headers=user)
    assert_envelope(again, 404, "not_found")


async def test_an_account_without_email_answers_an_empty_string_email(
    client: httpx.AsyncClient,
) -> None:
    registered = await register(client, "no-mail")
    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == ""
    login = await client.post("/v1/users/login", json={"username": "no-mail", "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["user"]["email"] == ""
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {login.json()['token']}"}
    )
    profile = me.json()
    assert (profile["email"], profile["username"], profile["preferences"]) == ("", "no-mail", {})
    assert isinstance(profile["id"], str)


async def test_the_bootstrap_admin_profile_parses_with_an_email_string(
    client: httpx.AsyncClient,
) -> None:
    me = await client.get("/v1/users/me", headers=ADMIN)
    assert me.status_code == 200
    assert isinstance(me.json()["email"], str)


async def test_the_python_client_registers_and_logs_in_with_an_email(
    client: httpx.AsyncClient,
) -> None:
    token = await invite(client)
    body = {"email": "ada@example.com", "password": PASSWORD, "invite_token": token}
    registered = await client.post("/v1/users/register", json=body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == "ada@example.com"
    login = await client.post(
        "/v1/users/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert isinstance(login.json()["token"], str)
    assert login.json()["user"]["id"] == registered.json()["id"]


async def test_the_dart_client_registers_an_address_sent_as_username_and_email(
    client: httpx.AsyncClient,
) -> None:
    token = await invite(client)
    body = {
        "username": "grace@example.com",
        "email": "grace@example.com",
        "password": PASSWORD,
        "invite_token": token,
    }
    registered = await client.post("/v1/users/register", json=body)
    assert registered.status_code == 201, registered.text
    assert (registered.json()["email"], registered.json()["username"]) == (
        "grace@example.com",
        None,
    )
    login = await client.post(
        "/v1/users/login",
        json={"username": "grace@example.com", "email": "grace@example.com", "password": PASSWORD},
    )
    assert login.status_code == 200, login.text


async def test_the_profile_updates_with_put_as_the_dart_client_sends(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client, "putter")
    updated = await client.put("/v1/users/me", json={"display_name": "Put"}, headers=user)
    assert updated.status_code == 200, updated.text
    assert updated.json()["display_name"] == "Put"
    assert (await client.get("/v1/users/me", headers=user)).json()["display_name"] == "Put"


# -- models -----------------------------------------------------------------------------------


async def test_provider_models_are_listed_with_version_latest_no_source_and_their_provider(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await user_with_openai_key(client, "catalog")
        page = (await client.get("/v1/models", params={"limit": 200}, headers=user)).json()
        assert page["next_cursor"] is None
        entry = next(m for m in page["models"] if m["id"] == "openai:gpt-4o-mini")
        assert (entry["version"], entry["source"], entry["provider"]) == ("latest", None, "openai")
        assert entry["availability"] == {
            "provider": "openai",
            "access": "available",
            "credits_status": {"provider": "openai", "status": "unknown"},
        }
        for model in page["models"]:
            assert_reference_model_info(model)


async def test_registry_models_have_a_version_a_source_uri_and_their_provider(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = local_model_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        entry = (await client.get(f"/v1/models/{LOCAL}", headers=ADMIN)).json()
        assert entry["version"] == "latest"  # no quantization in its name or header
        assert entry["source"] == {"type": "local", "uri": "zz-local.gguf", "revision": None}
        assert entry["availability"] == {
            "provider": "local",
            "access": "available",
            "credits_status": None,
        }
        assert_reference_model_info(entry)
        listed = await client.get("/v1/models", params={"provider": "local"}, headers=ADMIN)
        assert [m["id"] for m in listed.json()["models"]] == [LOCAL]
        for model in listed.json()["models"]:
            assert_reference_model_info(model)


async def test_every_provider_model_the_catalog_lists_is_gettable_with_the_same_entry(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await user_with_openai_key(client, "getter")
        listed = await client.get("/v1/models", params={"provider": "openai"}, headers=user)
        models = listed.json()["models"]
        # Embedding models only when asked for: the clients know three modalities.
        embedders = {f"openai:{m}" for m in openai_sim.models if "embedding" in m}
        assert embedders
        assert {m["id"] for m in models} == {f"openai:{m}" for m in openai_sim.models} - embedders
        asked = await client.get(
            "/v1/models", params={"provider": "openai", "modality": "embedding"}, headers=user
        )
        assert {m["id"] for m in asked.json()["models"]} == embedders
        for entry in models:
            got = await client.get(f"/v1/models/{entry['id']}", headers=user)
            assert got.status_code == 200, got.text
            stamps = ("created_at", "updated_at")
            assert {k: v for k, v in got.json().items() if k not in stamps} == {
                k: v for k, v in entry.items() if k not in stamps
            }


async def test_a_provider_model_status_is_loaded_with_nothing_queued(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await user_with_openai_key(client, "status")
        status = await client.get("/v1/models/openai:gpt-4o-mini/status", headers=user)
        assert status.status_code == 200, status.text
        assert status.json() == {
            "model_id": "openai:gpt-4o-mini",
            "status": "available",
            "runtime_status": "loaded",
            "queue_depth": 0,
            "loaded_at": None,
            "last_used_at": None,
            "memory_bytes": None,
        }


async def test_a_provider_model_the_catalog_does_not_list_is_not_found(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await user_with_openai_key(client, "missing")
        for path in (
            "/v1/models/openai:no-such-model",
            "/v1/models/openai:no-such-model/status",
            "/v1/models/nowhere:gpt-4o-mini",
            "/v1/models/gpt-4o-mini",
        ):
            assert_envelope(await client.get(path, headers=user), 404, "model_not_found")


async def test_fixed_model_sub_routes_take_precedence_over_model_ids(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = local_model_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        loaded = await client.get("/v1/models/loaded", headers=ADMIN)
        assert (loaded.status_code, loaded.json()) == (200, {"models": []})
        status = await client.get(f"/v1/models/{LOCAL}/status", headers=ADMIN)
        assert (status.status_code, status.json()["runtime_status"]) == (200, "unloaded")
        remote = await client.get("/v1/models/openai:gpt-4o-mini/status", headers=ADMIN)
        assert (remote.status_code, remote.json()["model_id"]) == (200, "openai:gpt-4o-mini")


async def test_loaded_models_carry_is_pinned_is_busy_and_busy_count(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = local_model_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        app.state.container.scheduler.factory = World().runtime
        load = await client.post(f"/v1/models/{LOCAL}/load", json={"wait": True}, headers=ADMIN)
        assert load.status_code == 200, load.text
        default = await client.post(f"/v1/models/{LOCAL}/default", headers=ADMIN)
        assert default.status_code == 200, default.text
        (entry,) = (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
        assert entry["model_id"] == LOCAL
        assert (entry["pinned"], entry["is_pinned"]) == (True, True)
        assert (entry["in_flight"], entry["is_busy"], entry["busy_count"]) == (0, False, 0)
        assert_timestamp(entry["loaded_at"])
        assert_timestamp(entry["last_used_at"])
        assert isinstance(entry["memory_bytes"], int)


async def test_unload_takes_force_from_the_body_as_the_dart_client_sends_it(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = local_model_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        app.state.container.scheduler.factory = World().runtime
        await client.post(f"/v1/models/{LOCAL}/load", json={"wait": True}, headers=ADMIN)
        await client.post(f"/v1/models/{LOCAL}/default", headers=ADMIN)  # pinned
        refused = await client.post(f"/v1/models/{LOCAL}/unload", json={}, headers=ADMIN)
        assert_envelope(refused, 409, "conflict")
        forced = await client.post(
            f"/v1/models/{LOCAL}/unload", json={"force": True}, headers=ADMIN
        )
        assert forced.status_code == 200, forced.text
        assert forced.json() == {"model_id": LOCAL, "status": "unloaded"}


async def test_a_model_schema_has_a_string_version_and_its_parameters_at_the_top_level(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = local_model_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        response = await client.get("/v1/schema", params={"model": LOCAL}, headers=ADMIN)
        assert response.status_code == 200
        body = response.json()
        assert (body["model_id"], body["version"]) == (LOCAL, "1")
        properties = body["properties"]
        assert set(properties) == set(body["schema"]["properties"])
        assert all(isinstance(p["type"], str) for p in properties.values())
        assert properties["temperature"] == {
            **body["schema"]["properties"]["temperature"],
            "type": "number",
        }
        assert (properties["temperature"]["minimum"], properties["temperature"]["maximum"]) == (
            0,
            2,
        )
        assert properties["stop"]["type"] == "string"  # the first type it takes
        assert "anyOf" in body["schema"]["properties"]["stop"]


async def test_providers_answer_names_flags_and_modalities_the_clients_know(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        user = await user_with_openai_key(client, "providers")
        providers = (await client.get("/v1/providers", headers=user)).json()["providers"]
        by_name = {p["name"]: p for p in providers}
        assert by_name["openai"]["configured"] is True
        assert by_name["anthropic"]["configured"] is False
        for provider in providers:
            assert isinstance(provider["name"], str)
            assert set(provider["supported_modalities"]) <= REFERENCE_MODALITIES


async def test_version_answers_a_version_string(client: httpx.AsyncClient) -> None:
    response = await client.get("/version")
    assert response.status_code == 200
    assert isinstance(response.json()["version"], str)


async def test_request_status_and_cancel_answer_the_fields_the_clients_read(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        answer = await client.post(
            "/v1/generate",
            json={"model": "openai:gpt-4o-mini", "modality": "text", "input": {"prompt": "hi"}},
            headers=ADMIN,
        )
        assert answer.status_code == 200, answer.text
        request_id = answer.json()["request_id"]
        status = await client.get(f"/v1/requests/{request_id}/status", headers=ADMIN)
        assert status.status_code == 200
        assert (status.json()["request_id"], status.json()["status"]) == (request_id, "completed")
        assert status.json()["queue_position"] is None
        cancel = await client.post(f"/v1/requests/{request_id}/cancel", headers=ADMIN)
        assert cancel.status_code == 200
        assert {k: cancel.json()[k] for k in ("request_id", "cancelled", "status")} == {
            "request_id": request_id,
            "cancelled": False,
            "status": "completed",
        }
