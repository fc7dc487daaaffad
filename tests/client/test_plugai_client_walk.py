"""Every method of the original PlugAI Python client (`llm_api_client.PluggablyClient`,
27 of them, and its Dart twin's equivalents), in the order a person would use them,
each with the exact request that method sends (path, query, body with its nulls, or no
body) and checked for what the client then parses from the answer (issue #14).

The other tests/client/test_plugai_client_*.py files check each contract point in depth; this
one proves that the whole client works end to end, so a change that breaks any one of
its calls fails here by the client method's name. One test per group of methods that
belong together (a resource's add/list/remove, a session's life), each on a fresh app
with the person the client registered; only the steps of one group depend on each other."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, client_for, invite, running
from tests.downloads.test_downloads import seed_hub
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.lifecycle.test_scheduler import World

LOCAL = "local/walk"
PASSWORD = "a long enough password"
ADMIN = {"X-API-Key": ADMIN_KEY}
REQUEST_STATUSES = {"pending", "queued", "running", "completed", "cancelled", "failed"}


def _stamp(value: Any) -> None:
    assert isinstance(value, str), value
    assert value.endswith(("Z", "+00:00")), value


def _generate_body(**changes: Any) -> dict[str, Any]:
    """GenerateRequest(modality="text", input=GenerateInput(prompt=…), model=…)
    .model_dump(mode="json"): every field present, the unset ones null."""
    body: dict[str, Any] = {
        "model": "openai:gpt-4o-mini",
        "provider": None,
        "session_id": None,
        "state_tokens": None,
        "modality": "text",
        "input": {"prompt": "hello there", "images": None, "mesh": None},
        "parameters": None,
        "stream": False,
        "selection_mode": None,
    }
    return body | changes


REGENERATE = {"model": None, "parameters": None, "stream": False, "selection_mode": None}


def _generate_response(body: dict[str, Any]) -> str:
    """What GenerateResponse requires; the request id."""
    assert isinstance(body["request_id"], str)
    assert isinstance(body["model"], str)
    assert body["modality"] == "text"
    assert body["output"]["text"] == "Echo: hello there"
    assert all(isinstance(body["usage"][k], int) for k in ("prompt_tokens", "completion_tokens"))
    assert isinstance(body["selection"]["selected_model"], str)
    return str(body["request_id"])


def _stream_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The client's _stream_events: `data: ` lines up to [DONE], JSON objects; an
    `error` key raises in the client."""
    assert response.status_code == 200, response.text
    events, done = [], False
    for line in response.text.splitlines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        payload = json.loads(line[6:])
        assert payload.get("error") is None, payload
        events.append(payload)
    assert done
    assert events[0]["event"] == "model_selected"
    assert isinstance(events[0]["model"], str)
    text = "".join(
        (c.get("delta") or {}).get("content") or "" for e in events for c in e.get("choices", [])
    )
    assert text == "Echo: hello there"
    return events


def _session(body: dict[str, Any], status: str = "active") -> None:
    assert isinstance(body["id"], str)
    assert body["status"] == status
    _stamp(body["created_at"])
    assert isinstance(body["message_count"], int)
    for message in body.get("messages") or []:
        assert message["role"] in {"user", "assistant"}
        assert isinstance(message["content"], str)
        _stamp(message["created_at"])


def _model_info(entry: dict[str, Any]) -> None:
    assert isinstance(entry["id"], str)
    assert isinstance(entry["name"], str)
    assert isinstance(entry["version"], str)
    assert entry["modality"] in {"text", "image", "3d"}
    assert entry["status"] in {"available", "downloading", "failed", "disabled", "evicted"}
    assert entry["availability"]["provider"] == entry["provider"]
    if entry["source"] is not None:
        assert entry["source"]["type"] in {"huggingface", "url", "local"}
        assert isinstance(entry["source"]["uri"], str)


def _job(body: dict[str, Any]) -> None:
    assert isinstance(body["job_id"], str)
    assert isinstance(body["model_id"], str)
    assert body["status"] in {"queued", "running", "completed", "failed", "cancelled"}
    assert isinstance(body["progress_pct"], float)
    assert body["error"] is None or isinstance(body["error"], str)
    _stamp(body["created_at"])


@dataclass
class Walk:
    """A running app with a person registered and logged in by email through the client's
    register and login: their headers, and what those two calls answered."""

    http: httpx.AsyncClient
    profile: dict[str, Any]
    logged_in: dict[str, Any]

    @property
    def user(self) -> dict[str, str]:
        return {"X-API-Key": self.logged_in["token"]}

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        # The client's _request: json=None sends no body at all.
        response = await self.http.request(method, path, headers=headers, json=body)
        assert response.status_code < 400, (method, path, response.text)
        return response

    async def json(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        return (await self.call(method, path, headers, body)).json()


@pytest.fixture
async def walk(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim, hf_hub: FakeHub
) -> AsyncIterator[Walk]:
    """The app the client talks to (OpenAI simulator, a fake Hub, a local GGUF on a fake
    runtime), with the person the client's register and login made."""
    seed_hub(hf_hub)
    gguf = tmp_path / "data" / "models" / "walk.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    app = gen_app(tmp_path, database_url, openai_sim, hf_endpoint=hf_hub.url)
    async with running(app), client_for(app) as http:
        app.state.container.scheduler.factory = World().runtime
        walk = Walk(http, {}, {})
        login = {"email": "zed@example.com", "password": PASSWORD}
        body = login | {"invite_token": await invite(http)}
        walk.profile = await walk.json("POST", "/v1/users/register", {}, body)
        walk.logged_in = await walk.json("POST", "/v1/users/login", {}, login)
        yield walk


async def _add_provider_key(walk: Walk) -> dict[str, Any]:
    """add_provider_key: the person's own OpenAI key (the generation routes need it)."""
    body = {"provider": "openai", "credential_type": "api_key", "api_key": "sk-walk-0001"}
    key: dict[str, Any] = await walk.json("POST", "/v1/users/provider-keys", walk.user, body)
    assert (key["provider"], key["credential_type"]) == ("openai", "api_key")
    _stamp(key["created_at"])
    return key


async def test_get_health_and_get_version(walk: Walk) -> None:
    assert await walk.json("GET", "/health", {}) == {"status": "ok"}
    assert isinstance((await walk.json("GET", "/version", {}))["version"], str)


async def test_register_and_login_by_email_with_an_invite(walk: Walk) -> None:
    assert (isinstance(walk.profile["id"], str), walk.profile["email"]) == (
        True,
        "zed@example.com",
    )
    assert isinstance(walk.logged_in["token"], str)
    assert isinstance(walk.logged_in["user"], dict)


async def test_get_profile_and_update_profile(walk: Walk) -> None:
    me = await walk.json("GET", "/v1/users/me", walk.user)
    assert (me["id"], me["email"]) == (walk.profile["id"], "zed@example.com")
    body = {"display_name": "Zed", "preferred_model": "openai:gpt-4o-mini"}
    me = await walk.json("PATCH", "/v1/users/me", walk.user, body)
    assert (me["display_name"], me["preferred_model"]) == ("Zed", "openai:gpt-4o-mini")
    assert isinstance(me["preferences"], dict)


async def test_add_list_and_remove_provider_keys(walk: Walk) -> None:
    key = await _add_provider_key(walk)
    listed = await walk.json("GET", "/v1/users/provider-keys", walk.user)
    assert [k["id"] for k in listed] == [key["id"]]
    removed = await walk.call("DELETE", "/v1/users/provider-keys/openai", walk.user)
    assert isinstance(removed.json(), dict)
    assert await walk.json("GET", "/v1/users/provider-keys", walk.user) == []


async def test_create_list_and_revoke_user_tokens(walk: Walk) -> None:
    made = await walk.json("POST", "/v1/users/tokens", walk.user, {})  # no name: {}
    assert isinstance(made["token"], str)
    _stamp(made["info"]["created_at"])
    listed = await walk.json("GET", "/v1/users/tokens", walk.user)
    assert [t["id"] for t in listed] == [made["info"]["id"]]
    revoked = await walk.call("DELETE", f"/v1/users/tokens/{made['info']['id']}", walk.user)
    assert isinstance(revoked.json(), dict)


async def test_list_providers_list_models_get_model_and_get_schema(walk: Walk) -> None:
    await _add_provider_key(walk)
    user = walk.user
    providers = (await walk.json("GET", "/v1/providers", user))["providers"]
    openai = next(p for p in providers if p["name"] == "openai")
    assert openai["configured"] is True
    assert set(openai["supported_modalities"]) <= {"text", "image", "3d"}
    catalog = await walk.json("GET", "/v1/models", user)
    for entry in catalog["models"]:
        _model_info(entry)
    texts = (await walk.json("GET", "/v1/models?modality=text", user))["models"]
    assert {m["modality"] for m in texts} == {"text"}
    remote = next(m for m in catalog["models"] if m["provider"] == "openai")
    _model_info(await walk.json("GET", f"/v1/models/{remote['id']}", user))
    schema = await walk.json("GET", f"/v1/schema?model={LOCAL}", user)
    assert isinstance(schema["version"], str)
    assert all(isinstance(p["type"], str) for p in schema["properties"].values())


async def test_generate_generate_stream_events_request_status_and_cancel(walk: Walk) -> None:
    await _add_provider_key(walk)
    user = walk.user
    request_id = _generate_response(await walk.json("POST", "/v1/generate", user, _generate_body()))
    _stream_events(await walk.call("POST", "/v1/generate", user, _generate_body(stream=True)))
    status = await walk.json("GET", f"/v1/requests/{request_id}/status", user)
    assert (status["request_id"], status["status"]) == (request_id, "completed")
    cancel = await walk.json("POST", f"/v1/requests/{request_id}/cancel", user)
    assert (cancel["request_id"], cancel["cancelled"]) == (request_id, False)
    assert cancel["status"] in REQUEST_STATUSES


async def test_a_session_from_create_to_close(walk: Walk) -> None:
    """create_session (no body), session(...).generate, regenerate, regenerate_stream, then
    list_sessions, get_session, update_session, reset_session, close_session: one session's
    life, each step on what the one before left."""
    await _add_provider_key(walk)
    user = walk.user
    session = await walk.json("POST", "/v1/sessions", user)
    _session(session)
    sid = session["id"]
    body = _generate_body(session_id=sid)
    _generate_response(await walk.json("POST", f"/v1/sessions/{sid}/generate", user, body))
    _generate_response(await walk.json("POST", f"/v1/sessions/{sid}/regenerate", user, REGENERATE))
    body = REGENERATE | {"stream": True}
    _stream_events(await walk.call("POST", f"/v1/sessions/{sid}/regenerate", user, body))

    listed = (await walk.json("GET", "/v1/sessions", user))["sessions"]
    assert [s["id"] for s in listed] == [sid]
    full = await walk.json("GET", f"/v1/sessions/{sid}", user)
    _session(full)
    assert [m["role"] for m in full["messages"]] == ["user", "assistant"]
    renamed = await walk.json("PUT", f"/v1/sessions/{sid}", user, {"title": "Walk"})
    assert renamed["title"] == "Walk"
    _session(await walk.json("PUT", f"/v1/sessions/{sid}", user, {}))
    reset = await walk.json("POST", f"/v1/sessions/{sid}/reset", user)
    assert reset["message_count"] == 0
    _session(await walk.json("DELETE", f"/v1/sessions/{sid}", user), "closed")


async def test_search_models_download_model_and_jobs(walk: Walk) -> None:
    """search_models, download_model, get_job, list_jobs, cancel_job (admin)."""
    found = await walk.json("GET", "/v1/models/search?query=tiny&source=huggingface", ADMIN)
    assert "acme/tiny-GGUF" in [r["id"] for r in found["results"]]
    body = {
        "model": {},
        "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "uri": None},
        "options": {"revision": None, "sha256": None, "allow_large": None},
    }
    job = await walk.json("POST", "/v1/models/download", ADMIN, body)
    _job(job)
    _job(await walk.json("GET", f"/v1/jobs/{job['job_id']}", ADMIN))
    jobs = await walk.json("GET", "/v1/jobs", ADMIN)
    for listed_job in jobs["jobs"] if isinstance(jobs, dict) else jobs:
        _job(listed_job)
    assert isinstance(await walk.json("DELETE", f"/v1/jobs/{job['job_id']}", ADMIN), dict)


async def test_default_load_status_loaded_and_unload_a_local_model(walk: Walk) -> None:
    """set_default_model ({}), load_model, get_model_status, get_loaded_models, unload_model."""
    _model_info(await walk.json("POST", f"/v1/models/{LOCAL}/default", ADMIN, {}))
    body = {"wait": True, "use_fallback": False}
    loaded = await walk.json("POST", f"/v1/models/{LOCAL}/load", ADMIN, body)
    assert loaded["status"] == "loaded"
    state = await walk.json("GET", f"/v1/models/{LOCAL}/status", ADMIN)
    assert (state["model_id"], state["runtime_status"]) == (LOCAL, "loaded")
    assert isinstance(state["queue_depth"], int)
    (entry,) = (await walk.json("GET", "/v1/models/loaded", ADMIN))["models"]
    assert (entry["model_id"], entry["is_pinned"], entry["is_busy"]) == (LOCAL, True, False)
    assert (entry["busy_count"], isinstance(entry["memory_bytes"], int)) == (0, True)
    _stamp(entry["loaded_at"])
    _stamp(entry["last_used_at"])
    unloaded = await walk.json("POST", f"/v1/models/{LOCAL}/unload?force=true", ADMIN)
    assert unloaded == {"model_id": LOCAL, "status": "unloaded"}
