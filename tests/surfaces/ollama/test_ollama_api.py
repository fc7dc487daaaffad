"""Ollama's API at /api/* driven by the official `ollama` client against the OpenAI
simulator (a provider model): chat and generate plain and streamed, options mapped,
images, tags, show, version, and errors in Ollama's shape with the client's
exceptions."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY, client_for, new_user, running
from tests.fixtures.openai_sim import DEFAULT_MODELS, OpenAISim, make_png, reasoning_of
from tests.generation.test_generate import gen_app

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
HOST = "http://testserver"
SIM_MODEL = "openai:gpt-4o-mini"


def ollama_client(app: FastAPI, headers: dict[str, str] | None = None) -> ollama.AsyncClient:
    """The official async client over the app in process (its kwargs go to httpx)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return ollama.AsyncClient(host=HOST, headers=headers or ADMIN, transport=transport, timeout=60)


@dataclass
class Surface:
    app: FastAPI
    api: ollama.AsyncClient
    client: httpx.AsyncClient


@pytest.fixture
async def surface(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> AsyncIterator[Surface]:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app, timeout=60) as client:
        yield Surface(app, ollama_client(app), client)


async def test_chat_answers_in_ollama_shape_and_maps_options_upstream(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    answer = await surface.api.chat(
        model=SIM_MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        stream=False,
        options={
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 7,
            "num_predict": 50,
            "stop": ["\n\n"],
            "top_k": 40,  # no native parameter: ignored, as Ollama ignores it
            "num_ctx": 8192,
            "mirostat": 1,
        },
    )
    assert answer.model == SIM_MODEL
    assert answer.message.role == "assistant"
    assert answer.message.content == "Echo: hello there"
    assert answer.done is True
    assert answer.done_reason == "stop"
    assert answer.eval_count == 3
    assert answer.prompt_eval_count is not None
    assert answer.prompt_eval_count > 0
    assert answer.total_duration is not None
    assert answer.total_duration > 0
    assert answer.created_at is not None
    assert answer.created_at.endswith("Z")
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["max_tokens"]) == (
        0.2,
        0.9,
        7,
        50,
    )
    assert sent["stop"] == ["\n\n"]
    assert "top_k" not in sent


async def test_num_predict_minus_one_sets_no_limit(surface: Surface, openai_sim: OpenAISim) -> None:
    await surface.api.chat(
        model=SIM_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=False,
        options={"num_predict": -1},
    )
    assert "max_tokens" not in openai_sim.requests_to("/v1/chat/completions")[-1].body


async def test_chat_streams_ndjson_lines(surface: Surface) -> None:
    lines = [
        part
        async for part in await surface.api.chat(
            model=f"{SIM_MODEL}:latest",  # clients add :latest to a name without a tag
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
        )
    ]
    deltas = [p.message.content for p in lines if not p.done]
    assert len(deltas) > 1  # real deltas, not one block
    assert "".join(c or "" for c in deltas) == "Echo: one two three"
    assert [p.done for p in lines] == [False] * (len(lines) - 1) + [True]
    final = lines[-1]
    assert final.done_reason == "stop"
    assert final.message.content == ""
    assert final.eval_count == 4


async def test_stream_is_ndjson_on_the_wire(surface: Surface) -> None:
    body = {"model": SIM_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    async with surface.client.stream("POST", "/api/chat", json=body, headers=ADMIN) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        raw = (await r.aread()).decode()
    assert raw.endswith("}\n")
    assert all(line.startswith("{") for line in raw.split("\n")[:-1])  # no blank lines


async def test_generate_plain_and_streamed(surface: Surface, openai_sim: OpenAISim) -> None:
    answer = await surface.api.generate(
        model=SIM_MODEL, prompt="hello there", system="Be brief.", stream=False
    )
    assert answer.response == "Echo: hello there"
    assert answer.done is True
    assert answer.done_reason == "stop"
    assert answer.context is None
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}

    parts = [
        p async for p in await surface.api.generate(model=SIM_MODEL, prompt="a b c d", stream=True)
    ]
    assert "".join(p.response or "" for p in parts) == "Echo: a b c d"
    assert parts[-1].done is True
    assert parts[-1].eval_count == 5


async def test_format_asks_for_json_or_a_schema(surface: Surface, openai_sim: OpenAISim) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    answer = await surface.api.chat(
        model=SIM_MODEL, messages=[{"role": "user", "content": "a city"}], format=schema
    )
    assert isinstance(json.loads(answer.message.content or "")["city"], str)
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["properties"] == schema["properties"]

    # OpenAI itself wants the word JSON in the messages with json_object.
    plain = await surface.api.generate(model=SIM_MODEL, prompt="a city as JSON", format="json")
    assert isinstance(json.loads(plain.response or ""), dict)
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body["response_format"]
    assert sent == {"type": "json_object"}


async def test_images_reach_the_model(surface: Surface, openai_sim: OpenAISim) -> None:
    png = make_png(8, 8, "x")
    answer = await surface.api.chat(
        model=SIM_MODEL,
        messages=[{"role": "user", "content": "what is it", "images": [png]}],
        stream=False,
    )
    assert answer.message.content
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    parts = sent["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 1
    assert base64.b64decode(urls[0].split(",", 1)[1]) == png


async def test_tool_calls_come_back_with_object_arguments(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    answer = await surface.api.chat(
        model=SIM_MODEL,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=tools,
        stream=False,
    )
    calls = answer.message.tool_calls
    assert calls is not None
    assert [c.function.name for c in calls] == ["get_weather"]
    assert isinstance(calls[0].function.arguments["city"], str)  # an object, not JSON text
    # The result goes back by tool name; the call gets an id the upstream pairs it by.
    after = await surface.api.chat(
        model=SIM_MODEL,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ],
        tools=tools,
        stream=False,
    )
    assert after.message.content == "The tool said: sunny"
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body["messages"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": call_id}
    streamed = [
        p
        async for p in await surface.api.chat(
            model=SIM_MODEL,
            messages=[{"role": "user", "content": "weather in Paris?"}],
            tools=tools,
            stream=True,
        )
    ]
    with_calls = [p for p in streamed if p.message.tool_calls]
    assert len(with_calls) == 1  # a call streams whole, in one line
    assert not with_calls[0].done
    [streamed_call] = with_calls[0].message.tool_calls or []
    assert streamed_call.function.arguments == calls[0].function.arguments
    assert streamed[-1].done is True


async def test_thinking_comes_back_plain_and_streamed(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    sim = make_openai_sim([*DEFAULT_MODELS, "deepseek-reasoner"])  # shows its reasoning
    app = gen_app(tmp_path, database_url, sim)
    async with running(app):
        api = ollama_client(app)
        model = "openai:deepseek-reasoner"
        messages: list[Mapping[str, Any]] = [{"role": "user", "content": "why"}]
        answer = await api.chat(model=model, messages=messages, think=True)
        assert answer.message.thinking == reasoning_of(messages)
        assert answer.message.content == "Echo: why"
        parts = [p async for p in await api.chat(model=model, messages=messages, stream=True)]
        assert "".join(p.message.thinking or "" for p in parts) == reasoning_of(messages)
        assert "".join(p.message.content or "" for p in parts) == "Echo: why"


async def test_tags_show_and_version(surface: Surface) -> None:
    listed = await surface.api.list()
    names = [m.model for m in listed.models]
    assert SIM_MODEL in names
    entry = next(m for m in listed.models if m.model == SIM_MODEL)
    assert entry.details is not None
    assert entry.details.format == "remote"
    assert entry.details.family == "openai"
    assert entry.digest is not None
    assert len(entry.digest) == 64
    raw = (await surface.client.get("/api/tags", headers=ADMIN)).json()["models"]
    assert all(m["name"] == m["model"] for m in raw)

    shown = await surface.api.show(SIM_MODEL)
    assert shown.capabilities == ["completion", "tools"]
    assert shown.modelinfo is not None
    assert shown.details is not None
    assert shown.details.family == "openai"

    version = await surface.client.get("/api/version")  # no credential needed
    assert version.status_code == 200
    assert version.json() == {"version": "0.12.0"}
    # The root answers as Ollama's does, to GET and HEAD, with no credential.
    root = await surface.client.get("/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"].startswith("text/plain")
    assert (await surface.client.head("/")).status_code == 200


async def test_errors_come_in_ollama_shape(surface: Surface) -> None:
    with pytest.raises(ollama.ResponseError) as unknown:
        await surface.api.show("no-such-model")
    assert unknown.value.status_code == 404
    assert "no-such-model" in unknown.value.error

    with pytest.raises(ollama.ResponseError) as missing:
        await surface.api.chat(model="local/nothing", messages=[{"role": "user", "content": "x"}])
    assert missing.value.status_code == 404

    bad = await surface.client.post(
        "/api/chat",
        json={"model": SIM_MODEL, "messages": [{"role": "robot", "content": "x"}]},
        headers=ADMIN,
    )
    assert bad.status_code == 400
    assert set(bad.json()) == {"error"}
    assert "messages[0].role" in bad.json()["error"]

    out_of_range = await surface.client.post(
        "/api/chat",
        json={
            "model": SIM_MODEL,
            "messages": [{"role": "user", "content": "x"}],
            "options": {"temperature": 9},
            "stream": False,
        },
        headers=ADMIN,
    )
    assert out_of_range.status_code == 400
    assert "temperature" in out_of_range.json()["error"]

    nameless = await surface.client.post("/api/show", json={}, headers=ADMIN)
    assert nameless.status_code == 400
    assert "model is required" in nameless.json()["error"]

    not_json = await surface.client.post(
        "/api/generate", content=b"{", headers={**ADMIN, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert set(not_json.json()) == {"error"}

    anonymous = await surface.client.get("/api/tags")
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"error"}

    with pytest.raises(ollama.ResponseError) as copy:
        await surface.api.copy(SIM_MODEL, "mine")
    assert copy.value.status_code == 400
    assert "copy is not supported" in copy.value.error

    with pytest.raises(ollama.ResponseError) as bad_keep:
        await surface.api.chat(
            model=SIM_MODEL, messages=[{"role": "user", "content": "x"}], keep_alive="soon"
        )
    assert bad_keep.value.status_code == 400
    assert "keep_alive" in bad_keep.value.error


async def test_keep_alive_that_is_not_a_number_is_refused(surface: Surface) -> None:
    for value in ("nan", "NaN", "-nan"):
        with pytest.raises(ollama.ResponseError) as refused:
            await surface.api.chat(
                model=SIM_MODEL, messages=[{"role": "user", "content": "x"}], keep_alive=value
            )
        assert refused.value.status_code == 400, value
        assert "keep_alive" in refused.value.error
    for wrong in (True, False, [5]):  # true is not one second
        refused_too = await surface.client.post(
            "/api/chat",
            json={"model": SIM_MODEL, "messages": [], "keep_alive": wrong},
            headers=ADMIN,
        )
        assert refused_too.status_code == 400, wrong
        assert "keep_alive" in refused_too.json()["error"]
    # A duration no date can hold is "until evicted", as a negative one.
    answer = await surface.api.chat(
        model=SIM_MODEL,
        messages=[{"role": "user", "content": "x"}],
        keep_alive="1e400",
        stream=False,
    )
    assert answer.done is True


async def test_a_name_that_is_only_a_tag_is_refused(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    """':latest' names no model: not the server's default one."""
    sent = len(openai_sim.requests_to("/v1/chat/completions"))
    for path, body in (
        ("/api/chat", {"messages": [{"role": "user", "content": "x"}], "stream": False}),
        ("/api/generate", {"prompt": "x", "stream": False}),
        ("/api/embed", {"input": "x"}),
        ("/api/show", {}),
    ):
        answer = await surface.client.post(path, json={"model": ":latest", **body}, headers=ADMIN)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json() == {"error": "model is required"}
    assert len(openai_sim.requests_to("/v1/chat/completions")) == sent


async def test_users_pull_and_delete_are_forbidden(surface: Surface) -> None:
    user = await new_user(surface.client, "olive")
    api = ollama_client(surface.app, user)
    with pytest.raises(ollama.ResponseError) as pulled:
        await api.pull("hf.co/acme/tiny-GGUF:Q4_K_M", stream=False)
    assert pulled.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as deleted:
        await api.delete(SIM_MODEL)
    assert deleted.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as copied:
        await api.copy(SIM_MODEL, "mine")
    assert copied.value.status_code == 403
    # A user's own models listing works (reads only).
    assert isinstance((await api.list()).models, list)


async def test_every_route_documents_and_answers_errors_in_ollama_shape(surface: Surface) -> None:
    """The walk of test_openapi_walk, in Ollama's error shape instead of the envelope."""
    spec = (await surface.client.get("/openapi.json")).json()
    operations = [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
    ]
    assert {(m, p) for m, p, _ in operations} == {
        ("POST", "/api/chat"),
        ("POST", "/api/generate"),
        ("POST", "/api/embed"),
        ("POST", "/api/embeddings"),
        ("GET", "/api/tags"),
        ("POST", "/api/show"),
        ("GET", "/api/ps"),
        ("GET", "/api/version"),
        ("POST", "/api/pull"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/copy"),
        ("POST", "/api/create"),
        ("POST", "/api/push"),
    }
    for method, path, op in operations:
        for status in ("400", "401", "404", "422", "500", "503"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/OllamaError"), (method, path, status)
        if path == "/api/version":
            assert (await surface.client.request(method, path)).status_code == 200
            continue
        anonymous = await surface.client.request(method, path)
        assert anonymous.status_code == 401
        assert set(anonymous.json()) == {"error"}
        garbage = await surface.client.request(
            method,
            path,
            content=b"{not json",
            headers={**ADMIN, "content-type": "application/json"},
        )
        if method != "GET":
            assert garbage.status_code == 400, (method, path, garbage.text)
            assert set(garbage.json()) == {"error"}


@pytest.mark.slow
def test_real_server_streams_lines_as_they_come_and_local_only_needs_no_key(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    """Through `pluggably serve` (local-only mode) and the sync client, as people use
    it: lines arrive one by one as the upstream produces them; a loopback caller needs
    no credential, a key still works."""
    from tests.serving.test_serve import start_server, stop_server

    openai_sim.set_reply("gpt-4o-mini", "alpha beta gamma delta epsilon")
    openai_sim.token_delay_s = 0.1
    proc, log_path = start_server(
        tmp_path,
        free_port,
        PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=openai_sim.base_url,
        PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
        PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
        PLUGGABLY_LOCAL_ONLY="true",
    )
    try:
        host = f"http://127.0.0.1:{free_port}"
        with ollama.Client(host=host) as api:  # no credential
            arrivals = [
                (time.monotonic(), part.message.content or "", part.done)
                for part in api.chat(
                    model=SIM_MODEL, messages=[{"role": "user", "content": "go"}], stream=True
                )
            ]
        texts = [text for _, text, done in arrivals if not done]
        assert "".join(texts) == "alpha beta gamma delta epsilon"
        assert len(texts) == 5
        assert arrivals[-2][0] - arrivals[0][0] > 0.25  # streamed, not sent at the end
        assert arrivals[-1][2] is True
        with ollama.Client(host=host, headers=ADMIN) as keyed:
            assert SIM_MODEL in [m.model for m in keyed.list().models]
    finally:
        stop_server(proc, log_path)
