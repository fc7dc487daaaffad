"""Every method of the original PlugAI Python client (`llm_api_client.PluggablyClient`,
27 of them, and its Dart twin's equivalents), in the order a person would use them,
each with the exact request that method sends (path, query, body with its nulls, or no
body) and checked for what the client then parses from the answer (issue #14).

The other tests/client/test_plugai_client_*.py files check each contract point in depth; this
one proves that the whole client works end to end, so a change that breaks any one of
its calls fails here by the client method's name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, client_for, invite, running
from tests.downloads.test_downloads import seed_hub
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.lifecycle.test_scheduler import World

LOCAL = "local/walk"
PASSWORD = "a long enough password"
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


async def test_every_plugai_client_method_works_unchanged(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    gguf = tmp_path / "data" / "models" / "walk.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    app = gen_app(tmp_path, database_url, openai_sim, hf_endpoint=hf_hub.url)
    async with running(app), client_for(app) as http:
        app.state.container.scheduler.factory = World().runtime
        admin = {"X-API-Key": ADMIN_KEY}

        async def call(
            method: str, path: str, headers: dict[str, str], body: Any = None
        ) -> httpx.Response:
            # The client's _request: json=None sends no body at all.
            response = await http.request(method, path, headers=headers, json=body)
            assert response.status_code < 400, (method, path, response.text)
            return response

        # get_health, get_version
        assert (await call("GET", "/health", {})).json() == {"status": "ok"}
        assert isinstance((await call("GET", "/version", {})).json()["version"], str)

        # register, login (by email, with an invite)
        body = {"email": "zed@example.com", "password": PASSWORD}
        body["invite_token"] = await invite(http)
        profile = (await call("POST", "/v1/users/register", {}, body)).json()
        assert (isinstance(profile["id"], str), profile["email"]) == (True, "zed@example.com")
        body = {"email": "zed@example.com", "password": PASSWORD}
        logged_in = (await call("POST", "/v1/users/login", {}, body)).json()
        assert isinstance(logged_in["token"], str)
        assert isinstance(logged_in["user"], dict)
        user = {"X-API-Key": logged_in["token"]}

        # get_profile, update_profile
        me = (await call("GET", "/v1/users/me", user)).json()
        assert (me["id"], me["email"]) == (profile["id"], "zed@example.com")
        body = {"display_name": "Zed", "preferred_model": "openai:gpt-4o-mini"}
        me = (await call("PATCH", "/v1/users/me", user, body)).json()
        assert (me["display_name"], me["preferred_model"]) == ("Zed", "openai:gpt-4o-mini")
        assert isinstance(me["preferences"], dict)

        # add_provider_key, list_provider_keys
        body = {"provider": "openai", "credential_type": "api_key", "api_key": "sk-walk-0001"}
        key = (await call("POST", "/v1/users/provider-keys", user, body)).json()
        assert (key["provider"], key["credential_type"]) == ("openai", "api_key")
        _stamp(key["created_at"])
        assert [k["id"] for k in (await call("GET", "/v1/users/provider-keys", user)).json()] == [
            key["id"]
        ]

        # create_user_token (no name: {}), list_user_tokens, revoke_user_token
        made = (await call("POST", "/v1/users/tokens", user, {})).json()
        assert isinstance(made["token"], str)
        _stamp(made["info"]["created_at"])
        listed = (await call("GET", "/v1/users/tokens", user)).json()
        assert [t["id"] for t in listed] == [made["info"]["id"]]
        revoked = await call("DELETE", f"/v1/users/tokens/{made['info']['id']}", user)
        assert isinstance(revoked.json(), dict)

        # list_providers, list_models (all, by modality), get_model, get_schema
        providers = (await call("GET", "/v1/providers", user)).json()["providers"]
        openai = next(p for p in providers if p["name"] == "openai")
        assert openai["configured"] is True
        assert set(openai["supported_modalities"]) <= {"text", "image", "3d"}
        catalog = (await call("GET", "/v1/models", user)).json()
        for entry in catalog["models"]:
            _model_info(entry)
        texts = (await call("GET", "/v1/models?modality=text", user)).json()["models"]
        assert {m["modality"] for m in texts} == {"text"}
        remote = next(m for m in catalog["models"] if m["provider"] == "openai")
        _model_info((await call("GET", f"/v1/models/{remote['id']}", user)).json())
        schema = (await call("GET", f"/v1/schema?model={LOCAL}", user)).json()
        assert isinstance(schema["version"], str)
        assert all(isinstance(p["type"], str) for p in schema["properties"].values())

        # generate, generate_stream_events
        request_id = _generate_response(
            (await call("POST", "/v1/generate", user, _generate_body())).json()
        )
        _stream_events(await call("POST", "/v1/generate", user, _generate_body(stream=True)))

        # get_request_status, cancel_request
        status = (await call("GET", f"/v1/requests/{request_id}/status", user)).json()
        assert (status["request_id"], status["status"]) == (request_id, "completed")
        cancel = (await call("POST", f"/v1/requests/{request_id}/cancel", user)).json()
        assert (cancel["request_id"], cancel["cancelled"]) == (request_id, False)
        assert cancel["status"] in REQUEST_STATUSES

        # create_session (no body), session(...).generate, regenerate, regenerate_stream
        session = (await call("POST", "/v1/sessions", user)).json()
        _session(session)
        sid = session["id"]
        body = _generate_body(session_id=sid)
        _generate_response((await call("POST", f"/v1/sessions/{sid}/generate", user, body)).json())
        again = await call("POST", f"/v1/sessions/{sid}/regenerate", user, REGENERATE)
        _generate_response(again.json())
        body = REGENERATE | {"stream": True}
        _stream_events(await call("POST", f"/v1/sessions/{sid}/regenerate", user, body))

        # list_sessions, get_session, update_session, reset_session, close_session
        listed = (await call("GET", "/v1/sessions", user)).json()["sessions"]
        assert [s["id"] for s in listed] == [sid]
        full = (await call("GET", f"/v1/sessions/{sid}", user)).json()
        _session(full)
        assert [m["role"] for m in full["messages"]] == ["user", "assistant"]
        renamed = (await call("PUT", f"/v1/sessions/{sid}", user, {"title": "Walk"})).json()
        assert renamed["title"] == "Walk"
        _session((await call("PUT", f"/v1/sessions/{sid}", user, {})).json())
        reset = (await call("POST", f"/v1/sessions/{sid}/reset", user)).json()
        assert reset["message_count"] == 0
        _session((await call("DELETE", f"/v1/sessions/{sid}", user)).json(), "closed")

        # search_models, download_model, get_job, list_jobs, cancel_job (admin)
        found = await call("GET", "/v1/models/search?query=tiny&source=huggingface", admin)
        assert "acme/tiny-GGUF" in [r["id"] for r in found.json()["results"]]
        body = {
            "model": {},
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "uri": None},
            "options": {"revision": None, "sha256": None, "allow_large": None},
        }
        job = (await call("POST", "/v1/models/download", admin, body)).json()
        _job(job)
        _job((await call("GET", f"/v1/jobs/{job['job_id']}", admin)).json())
        jobs = (await call("GET", "/v1/jobs", admin)).json()
        for listed_job in jobs["jobs"] if isinstance(jobs, dict) else jobs:
            _job(listed_job)
        assert isinstance((await call("DELETE", f"/v1/jobs/{job['job_id']}", admin)).json(), dict)

        # set_default_model ({}), load_model, get_model_status, get_loaded_models, unload_model
        _model_info((await call("POST", f"/v1/models/{LOCAL}/default", admin, {})).json())
        body = {"wait": True, "use_fallback": False}
        loaded = (await call("POST", f"/v1/models/{LOCAL}/load", admin, body)).json()
        assert loaded["status"] == "loaded"
        state = (await call("GET", f"/v1/models/{LOCAL}/status", admin)).json()
        assert (state["model_id"], state["runtime_status"]) == (LOCAL, "loaded")
        assert isinstance(state["queue_depth"], int)
        (entry,) = (await call("GET", "/v1/models/loaded", admin)).json()["models"]
        assert (entry["model_id"], entry["is_pinned"], entry["is_busy"]) == (LOCAL, True, False)
        assert (entry["busy_count"], isinstance(entry["memory_bytes"], int)) == (0, True)
        _stamp(entry["loaded_at"])
        _stamp(entry["last_used_at"])
        unloaded = await call("POST", f"/v1/models/{LOCAL}/unload?force=true", admin)
        assert unloaded.json() == {"model_id": LOCAL, "status": "unloaded"}

        # remove_provider_key
        removed = await call("DELETE", "/v1/users/provider-keys/openai", user)
        assert isinstance(removed.json(), dict)
        assert (await call("GET", "/v1/users/provider-keys", user)).json() == []
