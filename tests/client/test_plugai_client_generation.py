"""Existing PlugAI clients work unchanged (issue #14): the bodies their Python SDK
(pydantic models dumped with ``model_dump(mode="json")``: every optional field
present, ``null`` when unset) and their Dart app send, written out by hand, against
the real app: generation, session turns, regenerate, sessions, downloads, and the
preferred model."""

from __future__ import annotations

import json
import os
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
    deltas,
    make_settings,
    new_user,
    running,
    sse_frames,
)
from tests.downloads.test_downloads import gguf_bytes, hub_settings, seed_hub, wait_job
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"

# GenerateRequest(modality="text", input=GenerateInput(prompt="hello there"),
#     parameters=GenerateParameters(max_tokens=16)).model_dump(mode="json")
PLUGAI_GENERATE: dict[str, Any] = {
    "model": None,
    "provider": None,
    "session_id": None,
    "state_tokens": None,
    "modality": "text",
    "input": {"prompt": "hello there", "images": None, "mesh": None},
    "parameters": {"temperature": None, "max_tokens": 16, "format": None},
    "stream": False,
    "selection_mode": None,
}
# RegenerateRequest().model_dump(mode="json")
PLUGAI_REGENERATE: dict[str, Any] = {
    "model": None,
    "parameters": None,
    "stream": False,
    "selection_mode": None,
}
# ModelDownloadRequest(model={"id": "acme/tiny"}, source=ModelDownloadSource(
#     type="huggingface", id="acme/tiny-GGUF"), options=ModelDownloadOptions()
# ).model_dump(mode="json")
PLUGAI_DOWNLOAD: dict[str, Any] = {
    "model": {"id": "acme/tiny"},
    "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "uri": None},
    "options": {"revision": None, "sha256": None, "allow_large": None},
}
SESSION_KEYS = {
    "id",
    "title",
    "status",
    "system_prompt",
    "created_at",
    "last_used_at",
    "message_count",
    "state_tokens",
}


def _sent(sim: OpenAISim) -> dict[str, Any]:
    """The body of the last chat request the simulator received."""
    return dict(sim.requests_to("/v1/chat/completions")[-1].body)


def _answer(response: httpx.Response) -> dict[str, Any]:
    """What a client reads of a generate answer (ids and timings vary)."""
    assert response.status_code == 200, response.text
    body = response.json()
    return {
        "model": body["model"],
        "provider": body["provider"],
        "modality": body["modality"],
        "session_id": body["session_id"],
        "text": body["output"]["text"],
        "finish_reason": body["finish_reason"],
    }


async def _session(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/sessions", headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _answered_session(client: httpx.AsyncClient, model: str = MODEL) -> str:
    """A session whose first turn ("hello there") ``model`` has answered."""
    sid = await _session(client, ADMIN)
    first = await client.post(
        f"/v1/sessions/{sid}/generate",
        json={"model": model, "input": {"prompt": "hello there"}},
        headers=ADMIN,
    )
    assert first.status_code == 200, first.text
    return sid


def _fake_gguf(models: Path, relative: str) -> Path:
    path = models / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gguf_bytes(4096))
    return path


# generation
async def test_the_plugai_generate_body_with_its_nulls_is_answered(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        response = await client.post("/v1/generate", json=PLUGAI_GENERATE, headers=ADMIN)
        assert _answer(response) == {
            "model": MODEL,
            "provider": "openai",
            "modality": "text",
            "session_id": None,
            "text": "Echo: hello there",
            "finish_reason": "stop",
        }
        sent = _sent(openai_sim)
        assert sent["max_tokens"] == 16
        assert "temperature" not in sent


async def test_the_plugai_stream_body_with_its_nulls_streams(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        frames = await sse_frames(client, ADMIN, **PLUGAI_GENERATE)  # with stream: true
        assert "".join(deltas(frames)) == "Echo: hello there"
        assert frames[-2]["event"] == "complete"
        assert frames[-1] == "[DONE]"
        assert _sent(openai_sim)["max_tokens"] == 16


@pytest.mark.parametrize(
    "field",
    [
        "model",
        "provider",
        "modality",
        "parameters",
        "system_prompt",
        "session_id",
        "state_tokens",
        "selection_mode",
        "while_loading",
        "wait",
        "stream",
    ],
)
async def test_an_optional_generate_field_sent_as_null_means_not_set(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim, field: str
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        body = {"input": {"prompt": "hello there"}, field: None}
        response = await client.post("/v1/generate", json=body, headers=ADMIN)
        assert response.headers["content-type"] == "application/json"
        assert _answer(response) == {
            "model": MODEL,
            "provider": "openai",
            "modality": "text",
            "session_id": None,
            "text": "Echo: hello there",
            "finish_reason": "stop",
        }


async def test_a_null_parameter_value_is_dropped_before_the_schema_sees_it(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        body = {
            "model": MODEL,
            "input": {"prompt": "hello there"},
            "parameters": {"temperature": None, "max_tokens": 16, "stop": None, "seed": None},
        }
        response = await client.post("/v1/generate", json=body, headers=ADMIN)
        assert _answer(response)["text"] == "Echo: hello there"
        sent = _sent(openai_sim)
        assert sent["max_tokens"] == 16
        assert {"temperature", "stop", "seed"}.isdisjoint(sent)


async def test_an_unknown_parameter_is_still_refused_when_others_are_null(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        body = {
            "model": MODEL,
            "input": {"prompt": "hi"},
            "parameters": {"temperature": None, "bogus": 1},
        }
        detail = assert_envelope(
            await client.post("/v1/generate", json=body, headers=ADMIN), 422, "validation_error"
        )
        assert "bogus" in json.dumps(detail["details"])
        assert openai_sim.requests_to("/v1/chat/completions") == []


async def test_generate_without_input_is_a_validation_error_naming_input(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/generate", json={"model": MODEL}, headers=ADMIN)
    detail = assert_envelope(response, 422, "validation_error")
    assert [(d["loc"], d["type"]) for d in detail["details"]] == [(["body", "input"], "missing")]


async def test_generate_with_input_null_is_a_validation_error_naming_input(
    client: httpx.AsyncClient,
) -> None:
    body = {**PLUGAI_GENERATE, "input": None}
    detail = assert_envelope(
        await client.post("/v1/generate", json=body, headers=ADMIN), 422, "validation_error"
    )
    assert [d["loc"] for d in detail["details"]] == [["body", "input"]]


# sessions: turns and regenerate
async def test_the_plugai_session_turn_body_with_its_nulls_is_answered(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client, ADMIN)
        # generate_with_session: the request with session_id filled in, then dumped.
        body = {**PLUGAI_GENERATE, "session_id": sid}
        response = await client.post(f"/v1/sessions/{sid}/generate", json=body, headers=ADMIN)
        assert _answer(response) == {
            "model": MODEL,
            "provider": "openai",
            "modality": "text",
            "session_id": sid,
            "text": "Echo: hello there",
            "finish_reason": "stop",
        }
        assert _sent(openai_sim)["max_tokens"] == 16


async def test_session_generate_without_input_is_a_validation_error_naming_input(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client, ADMIN)
        response = await client.post(
            f"/v1/sessions/{sid}/generate", json={"model": MODEL}, headers=ADMIN
        )
        detail = assert_envelope(response, 422, "validation_error")
        assert [(d["loc"], d["type"]) for d in detail["details"]] == [
            (["body", "input"], "missing")
        ]
        stored = (await client.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()
        assert stored["messages"] == []


async def test_the_plugai_regenerate_body_with_its_nulls_answers_again(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _answered_session(client)
        openai_sim.set_reply("gpt-4o-mini", "Hello again.")
        response = await client.post(
            f"/v1/sessions/{sid}/regenerate", json=PLUGAI_REGENERATE, headers=ADMIN
        )
        assert _answer(response) == {
            "model": MODEL,
            "provider": "openai",
            "modality": "text",
            "session_id": sid,
            "text": "Hello again.",
            "finish_reason": "stop",
        }
        stored = (await client.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()
        assert [(m["role"], m["content"]) for m in stored["messages"]] == [
            ("user", "hello there"),
            ("assistant", "Hello again."),
        ]


async def test_regenerate_drops_null_parameter_values_and_takes_a_selection_mode(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _answered_session(client)
        body = {
            "model": MODEL,
            "parameters": {"temperature": None, "max_tokens": 16, "format": None},
            "stream": False,
            "selection_mode": "model",
        }
        response = await client.post(f"/v1/sessions/{sid}/regenerate", json=body, headers=ADMIN)
        assert _answer(response)["text"] == "Echo: hello there"
        sent = _sent(openai_sim)
        assert sent["max_tokens"] == 16
        assert "temperature" not in sent


async def test_regenerate_with_selection_mode_model_and_no_model_uses_the_last_answers_model(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _answered_session(client, "openai:gpt-4o")
        # The Dart app's regenerate: no model, no parameters, a selection mode.
        response = await client.post(
            f"/v1/sessions/{sid}/regenerate",
            json={"stream": False, "selection_mode": "model"},
            headers=ADMIN,
        )
        assert _answer(response)["model"] == "openai:gpt-4o"


# sessions: create and close
async def test_creating_a_session_without_a_body_answers_201_with_the_session(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/sessions", headers=ADMIN)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == SESSION_KEYS
    assert (created["title"], created["status"], created["message_count"]) == (None, "active", 0)


async def test_creating_a_session_with_a_null_body_answers_201_with_the_session(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/sessions",
        content=b"null",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert (response.json()["title"], response.json()["status"]) == (None, "active")


async def test_creating_a_session_with_a_null_title_answers_201_untitled(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/sessions", json={"title": None}, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert (response.json()["title"], response.json()["status"]) == (None, "active")


async def test_closing_a_session_answers_the_closed_session(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "alice")
    created = (await client.post("/v1/sessions", json={"title": "Trip"}, headers=auth)).json()
    response = await client.delete(f"/v1/sessions/{created['id']}", headers=auth)
    assert response.status_code == 200
    closed = response.json()
    assert closed == {**created, "status": "closed"}
    again = await client.delete(f"/v1/sessions/{created['id']}", headers=auth)
    assert (again.status_code, again.json()) == (200, closed)
    stored = (await client.get(f"/v1/sessions/{created['id']}", headers=auth)).json()
    assert stored["status"] == "closed"


async def test_purging_a_session_answers_it_as_it_was_last_and_closed(
    client: httpx.AsyncClient,
) -> None:
    auth = await new_user(client, "alice")
    created = (await client.post("/v1/sessions", json={"title": "Trip"}, headers=auth)).json()
    response = await client.delete(
        f"/v1/sessions/{created['id']}", params={"purge": "true"}, headers=auth
    )
    assert response.status_code == 200
    assert response.json() == {**created, "status": "closed"}
    assert_envelope(
        await client.get(f"/v1/sessions/{created['id']}", headers=auth), 404, "session_not_found"
    )


# downloads
async def test_the_plugai_download_body_with_null_options_downloads(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        response = await client.post("/v1/models/download", json=PLUGAI_DOWNLOAD, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = await wait_job(client, response.json()["job_id"], "completed", "failed")
        assert (job["model_id"], job["status"], job["error"]) == ("acme/tiny", "completed", None)


async def test_the_dart_app_download_body_downloads(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {
            "model": {
                "id": "acme/tiny",
                "name": "Tiny",
                "version": "latest",
                "modality": "text",
                "provider": "local",
            },
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF"},
            "options": {"install_local": True},
        }
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = await wait_job(client, response.json()["job_id"], "completed", "failed")
        assert (job["model_id"], job["status"]) == ("acme/tiny", "completed")
        info = (await client.get("/v1/models/acme/tiny", headers=ADMIN)).json()
        assert (info["name"], info["version"], info["provider"]) == ("Tiny", "latest", "local")


async def test_a_download_with_options_null_takes_the_default_options(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {**PLUGAI_DOWNLOAD, "options": None}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = await wait_job(client, response.json()["job_id"], "completed", "failed")
        assert job["status"] == "completed"


async def test_a_revision_in_options_is_the_revision_downloaded(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    sha = hf_hub.repos["acme/tiny-GGUF"].sha
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        missing = {**PLUGAI_DOWNLOAD, "options": {**PLUGAI_DOWNLOAD["options"], "revision": "v9"}}
        refused = await client.post("/v1/models/download", json=missing, headers=ADMIN)
        assert refused.status_code == 404, refused.text
        assert "v9" in refused.json()["detail"]["message"]
        pinned = {**PLUGAI_DOWNLOAD, "options": {**PLUGAI_DOWNLOAD["options"], "revision": sha}}
        response = await client.post("/v1/models/download", json=pinned, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = await wait_job(client, response.json()["job_id"], "completed", "failed")
        assert job["status"] == "completed"
        info = (await client.get("/v1/models/acme/tiny", headers=ADMIN)).json()
        assert info["source"]["revision"] == sha


async def test_the_same_revision_in_options_and_source_is_accepted(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {
            "model": {"id": "acme/tiny"},
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "revision": "main"},
            "options": {"revision": "main"},
        }
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text


async def test_different_revisions_in_options_and_source_are_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "revision": "main"},
        "options": {"revision": "v2"},
    }
    detail = assert_envelope(
        await client.post("/v1/models/download", json=body, headers=ADMIN),
        422,
        "validation_error",
    )
    assert [d["loc"] for d in detail["details"]] == [["body", "options"]]
    assert "options.revision" in detail["details"][0]["msg"]
    assert "source.revision" in detail["details"][0]["msg"]


# local sources
async def test_a_local_file_under_the_models_directory_is_registered_at_once(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        _fake_gguf(tmp_path / "data" / "models", "mine/tiny-Q4_K_M.gguf")
        body = {
            "model": {"id": "team/tiny", "name": "Tiny"},
            "source": {"type": "local", "uri": "mine/tiny-Q4_K_M.gguf"},
        }
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = response.json()
        assert (job["model_id"], job["status"], job["progress_pct"], job["error"]) == (
            "team/tiny",
            "completed",
            100.0,
            None,
        )
        assert job["bytes_done"] == job["bytes_total"] == 4096
        assert response.headers["location"] == f"/v1/jobs/{job['job_id']}"
        info = (await client.get("/v1/models/team/tiny", headers=ADMIN)).json()
        assert (info["name"], info["provider"], info["status"]) == ("Tiny", "local", "available")
        assert info["source"]["type"] == "local"
        assert info["local_path"] == str(
            (tmp_path / "data" / "models" / "mine/tiny-Q4_K_M.gguf").resolve()
        )
        again = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert (again.status_code, again.json()["job_id"]) == (200, job["job_id"])


async def test_a_local_folder_given_by_absolute_path_inside_is_registered(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        models = (tmp_path / "data" / "models").resolve()
        _fake_gguf(models, "folder/model-Q8_0.gguf")
        body = {"source": {"type": "local", "uri": str(models / "folder")}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = response.json()
        assert (job["model_id"], job["status"]) == ("local/folder/model-Q8_0", "completed")
        listed = (await client.get("/v1/models", headers=ADMIN)).json()["models"]
        assert "local/folder/model-Q8_0" in [m["id"] for m in listed]


async def test_registering_a_file_discovery_found_keeps_its_id(
    tmp_path: Path, database_url: str
) -> None:
    _fake_gguf(tmp_path / "data" / "models", "found.gguf")
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        body: dict[str, Any] = {"source": {"type": "local", "uri": "found.gguf"}}
        renamed = {**body, "model": {"id": "other/name"}}
        detail = assert_envelope(
            await client.post("/v1/models/download", json=renamed, headers=ADMIN), 409, "conflict"
        )
        assert "local/found" in detail["message"]
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        assert (response.json()["model_id"], response.json()["status"]) == (
            "local/found",
            "completed",
        )
        ids = [m["id"] for m in (await client.get("/v1/models", headers=ADMIN)).json()["models"]]
        assert ids.count("local/found") == 1
        assert "other/name" not in ids


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
async def test_a_local_path_outside_the_models_directory_is_refused(
    tmp_path: Path, database_url: str, where: str
) -> None:
    outside = _fake_gguf(tmp_path, "elsewhere/secret.gguf")
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    os.symlink(outside, models / "link.gguf")
    uri = {
        "absolute": str(outside),
        "dotdot": "../../elsewhere/secret.gguf",
        "symlink": "link.gguf",
    }
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "local", "uri": uri[where]}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert uri[where] in detail["message"]
        assert (await client.get("/v1/jobs", headers=ADMIN)).json()["jobs"] == []


@pytest.mark.parametrize("where", ["long_name", "symlink_loop"])
async def test_a_local_path_the_system_cannot_read_is_refused_not_a_500(
    tmp_path: Path, database_url: str, where: str
) -> None:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    os.symlink(models / "loop2", models / "loop1")
    os.symlink(models / "loop1", models / "loop2")
    uri = {"long_name": "x" * 300, "symlink_loop": "loop1/m.gguf"}[where]
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "local", "uri": uri}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert uri in detail["message"]


async def test_a_local_source_refuses_fields_it_would_ignore(
    tmp_path: Path, database_url: str
) -> None:
    """A checksum on a local source is refused rather than silently not checked."""
    _fake_gguf(tmp_path / "data" / "models", "mine/tiny-Q4_K_M.gguf")
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        body = {
            "source": {"type": "local", "uri": "mine/tiny-Q4_K_M.gguf"},
            "options": {"sha256": "0" * 64},
        }
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert "options.sha256" in detail["message"]


async def test_a_local_folder_with_several_models_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    models = tmp_path / "data" / "models"
    _fake_gguf(models, "many/a-Q4_0.gguf")
    _fake_gguf(models, "many/b-Q8_0.gguf")
    app = create_app(make_settings(tmp_path, database_url, bundled_model=False))
    async with running(app), client_for(app) as client:
        body = {"model": {"id": "team/one"}, "source": {"type": "local", "uri": "many"}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert "several models" in detail["message"]


async def test_registering_a_local_path_again_under_another_id_is_a_conflict(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        _fake_gguf(tmp_path / "data" / "models", "mine/tiny-Q4_K_M.gguf")  # after discovery
        source = {"type": "local", "uri": "mine/tiny-Q4_K_M.gguf"}
        first = {"model": {"id": "team/tiny"}, "source": source}
        made = await client.post("/v1/models/download", json=first, headers=ADMIN)
        assert made.status_code == 202, made.text
        again = await client.post("/v1/models/download", json=first, headers=ADMIN)
        assert (again.status_code, again.json()["job_id"]) == (200, made.json()["job_id"])
        other = {"model": {"id": "team/other"}, "source": source}
        refused = await client.post("/v1/models/download", json=other, headers=ADMIN)
        detail = assert_envelope(refused, 409, "conflict")
        assert "team/tiny" in detail["message"]


async def test_a_missing_local_path_is_not_found(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "local", "uri": "nothing/here.gguf"}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        detail = assert_envelope(response, 404, "model_not_found")
        assert "nothing/here.gguf" in detail["message"]


async def test_a_local_file_that_is_no_model_is_refused(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        (tmp_path / "data" / "models" / "notes.txt").write_text("not a model")
        body = {"source": {"type": "local", "uri": "notes.txt"}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert "notes.txt" in detail["message"]


async def test_a_local_source_needs_a_uri(client: httpx.AsyncClient) -> None:
    body = {"source": {"type": "local", "id": None, "uri": None}}
    detail = assert_envelope(
        await client.post("/v1/models/download", json=body, headers=ADMIN), 422, "validation_error"
    )
    assert [d["loc"] for d in detail["details"]] == [["body", "source"]]


# the preferred model
async def test_preferred_model_accepts_a_registry_id_and_its_local_form(
    tmp_path: Path, database_url: str
) -> None:
    _fake_gguf(tmp_path / "data" / "models", "tiny.gguf")
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        auth = await new_user(client, "alice")
        listed = [m["id"] for m in (await client.get("/v1/models", headers=auth)).json()["models"]]
        assert "local/tiny" in listed
        for model in ("local/tiny", "local:local/tiny", "openai:gpt-4o"):
            response = await client.patch(
                "/v1/users/me", json={"preferred_model": model}, headers=auth
            )
            assert (response.status_code, response.json()["preferred_model"]) == (200, model)


@pytest.mark.parametrize("model", ["local:nope", "nope/missing", "mystery-model", "nope:thing"])
async def test_preferred_model_refuses_an_unknown_model_naming_the_field(
    client: httpx.AsyncClient, model: str
) -> None:
    auth = await new_user(client, "alice")
    response = await client.patch("/v1/users/me", json={"preferred_model": model}, headers=auth)
    detail = assert_envelope(response, 422, "validation_error")
    assert model in detail["message"]
    assert [d["loc"] for d in detail["details"]] == [["body", "preferred_model"]]
    assert (await client.get("/v1/users/me", headers=auth)).json()["preferred_model"] is None


async def test_a_generate_request_without_a_model_uses_the_preferred_provider_model(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        patched = await client.patch(
            "/v1/users/me", json={"preferred_model": "openai:gpt-4o"}, headers=ADMIN
        )
        assert patched.status_code == 200, patched.text
        response = await client.post("/v1/generate", json=PLUGAI_GENERATE, headers=ADMIN)
        assert _answer(response)["model"] == "openai:gpt-4o"
        assert _sent(openai_sim)["model"] == "gpt-4o"


@pytest.mark.slow
async def test_a_generate_request_without_a_model_uses_the_preferred_local_model(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    os.link(gemma_gguf, models / "gemma.gguf")
    app: FastAPI = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app, timeout=60) as client:
        patched = await client.patch(
            "/v1/users/me", json={"preferred_model": "local:local/gemma"}, headers=ADMIN
        )
        assert patched.status_code == 200, patched.text
        body = {**PLUGAI_GENERATE, "input": {"prompt": "Once upon a time", "images": None}}
        body["parameters"] = {"temperature": 0, "max_tokens": 4, "format": None}
        response = await client.post("/v1/generate", json=body, headers=ADMIN)
        assert response.status_code == 200, response.text
        named = await client.post(
            "/v1/generate", json={**body, "model": "local:local/gemma"}, headers=ADMIN
        )
        assert named.status_code == 200, named.text
        answer, expected = response.json(), named.json()
        assert answer["provider"] == "local"
        assert (answer["model"], answer["selection"]) == (expected["model"], expected["selection"])
        assert answer["output"]["text"] == expected["output"]["text"]  # greedy: the same text
        assert answer["usage"]["completion_tokens"] == 4
