"""The OpenAI-compatible surface (/openai/v1) driven by the official `openai` SDK: against
the OpenAI simulator and the bundled Gemma model in process, and a real `pluggably serve`
for incremental streams. Errors come in OpenAI's shape and map to the SDK's exceptions."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, client_for, make_settings, new_user, running
from tests.fixtures.openai_sim import OpenAISim, make_png
from tests.generation.test_generate import gen_app, serve_with

ADMIN = {"X-API-Key": ADMIN_KEY}
BASE = "http://testserver/openai/v1"
PNG_B64 = base64.b64encode(make_png(8, 8, "x")).decode()
HELLO = [{"role": "user", "content": "hi"}]


def sdk(app: FastAPI, key: str = ADMIN_KEY) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        base_url=BASE,
        api_key=key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, timeout=60),
    )


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx.AsyncClient]]:
    async with running(app), client_for(app, timeout=60) as client:
        api = sdk(app)
        try:
            yield api, client
        finally:
            await api.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    """The OpenAI error object of a response, checked for OpenAI's shape."""
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert exc.response.headers["x-request-id"]
    return dict(body["error"])


async def drain(stream: Any, seen: list[str]) -> None:
    async for chunk in stream:
        seen += [c.delta.content or "" for c in chunk.choices]


def cancel_after(stream: Any, chunks: int, base: str) -> None:
    """Read ``chunks`` chunks, cancel the request through the native route, read on."""
    for n, chunk in enumerate(stream):
        if n == chunks:
            request_id = chunk.id.removeprefix("chatcmpl-")
            answer = httpx.post(
                f"{base}/v1/requests/{request_id}/cancel", headers=ADMIN, timeout=10
            )
            assert answer.json()["cancelled"] is True


@dataclass
class Surface:
    """The gateway in process over the OpenAI simulator: the app (for SDK clients with
    other keys), the SDK as the admin, and a plain client for the native routes."""

    app: FastAPI
    api: openai.AsyncOpenAI
    client: httpx.AsyncClient


@pytest.fixture
async def surface(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> AsyncIterator[Surface]:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with serving(app) as (api, client):
        yield Surface(app, api, client)


async def test_chat_answers_in_openai_shape_and_maps_the_request_upstream(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    chat = await surface.api.chat.completions.create(
        model="openai:gpt-4o-mini",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        max_completion_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=["\n\n"],
        seed=7,
        n=1,
    )
    assert chat.object == "chat.completion"
    assert chat.id.startswith("chatcmpl-")
    assert chat.model == "openai:gpt-4o-mini"
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == "Echo: hello there"
    assert chat.choices[0].finish_reason == "stop"
    assert chat.usage is not None
    assert chat.usage.completion_tokens == 3
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + 3
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["seed"]) == (
        50,
        0.2,
        0.9,
        7,
    )
    assert sent["stop"] == ["\n\n"]
    # The same request record as /v1/generate keeps.
    request_id = chat.id.removeprefix("chatcmpl-")
    record = (await surface.client.get(f"/v1/requests/{request_id}", headers=ADMIN)).json()
    assert record["status"] == "completed"
    assert record["result"]["output"]["text"] == "Echo: hello there"


async def test_a_bare_vendor_model_name_is_found_and_answered_as_sent(surface: Surface) -> None:
    short = await surface.api.chat.completions.create(
        model="gpt-4o",  # a bare vendor name finds its vendor, as on /v1/generate
        messages=[{"role": "user", "content": "one two three four"}],
        max_tokens=2,
    )
    assert short.model == "gpt-4o"  # the id as the caller sent it
    assert short.choices[0].finish_reason == "length"


async def test_json_object_response_format_reaches_the_upstream(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    as_json = await surface.api.chat.completions.create(
        model="openai:gpt-4o-mini",
        messages=[{"role": "user", "content": "answer in json"}],
        response_format={"type": "json_object"},
    )
    assert as_json.choices[0].message.content
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    assert sent["response_format"] == {"type": "json_object"}


async def test_an_image_part_reaches_the_upstream(surface: Surface, openai_sim: OpenAISim) -> None:
    vision = await surface.api.chat.completions.create(
        model="openai:gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
                    },
                ],
            }
        ],
    )
    assert vision.choices[0].message.content == "Echo: what is this [1 image]"
    parts = openai_sim.requests_to("/v1/chat/completions")[-1].body["messages"][-1]["content"]
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{PNG_B64}"


async def test_a_stream_sends_a_chunk_per_token_then_the_usage_asked_for(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "one two three four five")
    stream = await surface.api.chat.completions.create(
        model="openai:gpt-4o-mini",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "openai:gpt-4o-mini" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(t for t in texts if t) == "one two three four five"
    assert len([t for t in texts if t]) == 5  # one chunk per upstream token
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


async def test_a_stream_has_no_usage_chunk_unasked(surface: Surface) -> None:
    plain = await surface.api.chat.completions.create(
        model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    plain_chunks = [chunk async for chunk in plain]
    assert plain_chunks[-1].choices[0].finish_reason == "stop"  # no usage chunk unasked


async def test_legacy_completions(surface: Surface) -> None:
    api = surface.api
    done = await api.completions.create(model="openai:gpt-4o-mini", prompt="say hi", max_tokens=10)
    assert done.object == "text_completion"
    assert done.choices[0].text == "Echo: say hi"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert done.usage.completion_tokens == 3
    echoed = await api.completions.create(model="openai:gpt-4o-mini", prompt=["say hi"], echo=True)
    assert echoed.choices[0].text == "say hiEcho: say hi"
    stream = await api.completions.create(
        model="openai:gpt-4o-mini",
        prompt="a b c",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Echo: a b c"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    with pytest.raises(openai.BadRequestError) as many:
        await api.completions.create(model="openai:gpt-4o-mini", prompt=["a", "b"])
    assert error_of(many.value)["param"] == "prompt"


@pytest.mark.parametrize(
    ("request_fields", "error_class", "expected", "message_says"),
    [
        pytest.param(
            {"model": "no-such-model"},
            openai.NotFoundError,
            {"type": "invalid_request_error", "code": "model_not_found"},
            None,
            id="unknown-model",
        ),
        pytest.param(
            {"model": "openai:gpt-nope"},
            openai.NotFoundError,
            {"code": "model_not_found"},
            None,
            id="model-unknown-upstream",
        ),
        pytest.param({"n": 2}, openai.BadRequestError, {"param": "n"}, None, id="n-over-one"),
        pytest.param(
            {"temperature": 5},
            openai.BadRequestError,
            {"param": "temperature", "code": "invalid_parameter"},
            "maximum",
            id="temperature-too-high",
        ),
        pytest.param(
            {"messages": []}, openai.BadRequestError, {"param": "messages"}, None, id="no-messages"
        ),
        pytest.param(
            {"messages": [{"role": "wizard", "content": "x"}]},
            openai.BadRequestError,
            {"param": "messages[0].role"},
            None,
            id="unknown-role",
        ),
        pytest.param(
            {"tools": [{"type": "custom", "custom": {"name": "grep"}}]},
            openai.BadRequestError,
            {"param": "tools[0].type", "code": "feature_not_supported"},
            "'custom'",
            id="custom-tool",
        ),
        pytest.param(
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            openai.BadRequestError,
            {"param": "response_format.json_schema.schema", "code": "invalid_parameter"},
            None,
            id="json-schema-without-schema",
        ),
    ],
)
async def test_a_rejected_chat_is_an_openai_error(
    surface: Surface,
    request_fields: dict[str, Any],
    error_class: type[openai.APIStatusError],
    expected: dict[str, str],
    message_says: str | None,
) -> None:
    body: dict[str, Any] = {"model": "openai:gpt-4o-mini", "messages": HELLO, **request_fields}
    with pytest.raises(error_class) as rejected:
        await surface.api.chat.completions.create(**body)
    error = error_of(rejected.value)
    assert {field: error[field] for field in expected} == expected
    if message_says is not None:
        assert message_says in error["message"]


async def test_an_unknown_key_is_an_openai_authentication_error(surface: Surface) -> None:
    with pytest.raises(openai.AuthenticationError) as bad_key:
        await sdk(surface.app, "not-a-real-key").models.list()
    error = error_of(bad_key.value)
    assert (error["type"], error["code"]) == ("authentication_error", "unauthorized")


async def test_a_stream_failing_after_its_200_ends_in_an_openai_error_chunk(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    """An OpenAI error chunk, which the SDK raises."""
    openai_sim.set_reply("gpt-4o-mini", "a b c d e f")
    openai_sim.break_stream_after(2)
    stream = await surface.api.chat.completions.create(
        model="openai:gpt-4o-mini", messages=HELLO, stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as broken:
        await drain(stream, seen)
    assert "".join(seen) == "a b "
    assert isinstance(broken.value.body, dict)
    assert broken.value.body["code"] == "backend_unavailable"
    assert broken.value.body["type"] == "server_error"


BAD_JSON: dict[str, Any] = {
    "content": b"{not json",
    "headers": {**ADMIN, "content-type": "application/json"},
}


@pytest.mark.parametrize(
    ("method", "path", "sent", "status", "field", "value"),
    [
        pytest.param(
            "POST",
            "/openai/v1/chat/completions",
            BAD_JSON,
            400,
            "code",
            "invalid_json",
            id="bad-json",
        ),
        pytest.param(
            "GET",
            "/openai/v1/nope",
            {"headers": ADMIN},
            404,
            "code",
            "not_found",
            id="unknown-route",
        ),
        pytest.param(
            "GET",
            "/openai/v1/chat/completions",
            {"headers": ADMIN},
            405,
            "type",
            "invalid_request_error",
            id="wrong-method",
        ),
    ],
)
async def test_requests_outside_the_sdk_get_openai_errors(
    surface: Surface,
    method: str,
    path: str,
    sent: dict[str, Any],
    status: int,
    field: str,
    value: str,
) -> None:
    answer = await surface.client.request(method, path, **sent)
    assert answer.status_code == status
    assert answer.json()["error"][field] == value


async def test_an_anonymous_request_is_asked_for_a_bearer_key(surface: Surface) -> None:
    anonymous = await surface.client.post("/openai/v1/chat/completions", json={})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_the_native_surface_keeps_its_own_envelope(surface: Surface) -> None:
    native = await surface.client.post("/v1/generate", **BAD_JSON)
    assert native.json()["detail"]["code"] == "invalid_json"


async def two_base64_foxes(api: openai.AsyncOpenAI) -> None:
    """Two 256x256 images asked for in base64: both come inline, neither as a link."""
    out = await api.images.generate(
        model="openai:dall-e-2",
        prompt="a red fox",
        n=2,
        size="256x256",
        response_format="b64_json",
    )
    assert out.data is not None
    assert len(out.data) == 2
    for item in out.data:
        assert item.url is None
        assert item.b64_json is not None
        assert png_size(base64.b64decode(item.b64_json)) == (256, 256)


async def test_image_generation_in_both_formats(surface: Surface, openai_sim: OpenAISim) -> None:
    api, client = surface.api, surface.client
    await two_base64_foxes(api)
    sent = openai_sim.requests_to("/v1/images/generations")[-1].body
    assert (sent["model"], sent["n"], sent["size"]) == ("dall-e-2", 2, "256x256")

    linked = await api.images.generate(
        model="openai:dall-e-3", prompt="a blue whale", size="1024x1024"
    )
    assert linked.data is not None
    assert len(linked.data) == 1
    url = linked.data[0].url
    assert url is not None
    assert linked.data[0].b64_json is None
    assert url.startswith("http://testserver/v1/artifacts/")
    fetched = await client.get(url)  # the signed link is the credential
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    assert png_size(fetched.content) == (1024, 1024)

    with pytest.raises(openai.BadRequestError) as size:
        await api.images.generate(model="openai:dall-e-2", prompt="x", size="huge")
    assert error_of(size.value)["param"] == "size"
    with pytest.raises(openai.BadRequestError) as many:
        await api.images.generate(model="openai:dall-e-2", prompt="x", n=9)
    assert error_of(many.value)["param"] == "n"


async def test_b64_images_too_large_to_inline_are_read_back_from_their_artifacts(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The native answer links them (over ``inline_output_bytes``); the surface reads
    each artifact by id and still answers base64."""
    app = gen_app(tmp_path, database_url, openai_sim, inline_output_bytes=0)
    async with serving(app) as (api, _client):
        await two_base64_foxes(api)


async def test_model_list_and_credentials(surface: Surface, openai_sim: OpenAISim) -> None:
    app, api, client = surface.app, surface.api, surface.client
    page = await api.models.list()
    ids = [m.id for m in page.data]
    assert "openai:gpt-4o-mini" in ids
    assert "openai:dall-e-3" in ids
    assert all(m.object == "model" and isinstance(m.created, int) for m in page.data)
    assert {m.owned_by for m in page.data} == {"openai"}
    raw = (await client.get("/openai/v1/models", headers=ADMIN)).json()
    assert raw["object"] == "list"
    assert set(raw["data"][0]) == {"id", "object", "created", "owned_by"}
    one = await api.models.retrieve("openai:gpt-4o-mini")
    assert one.id == "openai:gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        await api.models.retrieve("openai:nothing-like-it")

    # A user's API token as the SDK's bearer key: no OpenAI key, so no OpenAI models,
    # and a chat with one says what is missing.
    login = await new_user(client, "sdkuser")
    created = await client.post("/v1/users/tokens", json={"name": "sdk"}, headers=login)
    token = created.json()["token"]
    assert token.startswith("plg_")
    user_api = sdk(app, token)
    try:
        assert [m.id for m in (await user_api.models.list()).data] == []
        with pytest.raises(openai.BadRequestError) as missing:
            await user_api.chat.completions.create(
                model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert error_of(missing.value)["code"] == "provider_not_configured"
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-users-own-key-77"},
            headers=login,
        )
        assert "openai:gpt-4o" in [m.id for m in (await user_api.models.list()).data]
        chat = await user_api.chat.completions.create(
            model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert chat.choices[0].message.content == "Echo: hi"
        sent = openai_sim.requests_to("/v1/chat/completions")[-1]
        assert sent.headers["authorization"] == "Bearer sk-users-own-key-77"
    finally:
        await user_api.close()


def gemma_app(tmp_path: Path, database_url: str, gemma_gguf: Path) -> FastAPI:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    os.link(gemma_gguf, models / "gemma.gguf")
    return create_app(make_settings(tmp_path, database_url, preload_defaults=False))


@pytest.mark.slow
async def test_local_gemma_chat_stream_queue_and_listing(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    async with serving(app) as (api, client):
        listed = [m for m in (await api.models.list()).data if m.id == "local/gemma"]
        assert [m.owned_by for m in listed] == ["local"]

        chat = await api.chat.completions.create(
            model="local/gemma",
            messages=[{"role": "user", "content": "The capital of France is"}],
            max_tokens=8,
            temperature=0,  # sampled, the base model may end its turn within a few tokens
        )
        assert chat.model == "local/gemma"
        assert chat.choices[0].message.content
        assert chat.choices[0].finish_reason == "length"
        assert chat.usage is not None
        assert chat.usage.completion_tokens == 8

        stream = await api.chat.completions.create(
            model="local/gemma",
            messages=[{"role": "user", "content": "Once upon a time"}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        texts = [c.choices[0].delta.content for c in chunks if c.choices]
        assert len([t for t in texts if t]) > 3  # real tokens, not one block
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == chunks[-1].usage.total_tokens - (
            chunks[-1].usage.prompt_tokens
        )

        # One request at a time runs on the model: the others wait in its queue and still
        # answer 200 (an OpenAI client cannot follow a 202).
        answers = await asyncio.gather(
            *(
                api.chat.completions.create(
                    model="local/gemma",
                    messages=[{"role": "user", "content": f"Count to {i}"}],
                    max_tokens=6,
                    temperature=0,
                )
                for i in range(3)
            )
        )
        assert all(a.choices[0].finish_reason == "length" for a in answers)
        waited = []
        for answer in answers:
            request_id = answer.id.removeprefix("chatcmpl-")
            record = (await client.get(f"/v1/requests/{request_id}", headers=ADMIN)).json()
            waited.append(record["result"]["timings"]["queue_ms"])
        assert max(waited) > 20  # the last in line waited for the others to finish


@pytest.mark.slow
def test_real_server_streams_chunks_as_they_come(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    """Through `pluggably serve` and the sync SDK: chunks arrive one by one as the upstream
    produces them; a cancel through the native route ends the stream with an error."""
    from tests.serving.test_serve import stop_server

    openai_sim.set_reply("gpt-4o-mini", "alpha beta gamma delta epsilon zeta")
    openai_sim.token_delay_s = 0.1
    proc, log_path = serve_with(tmp_path, free_port, openai_sim)
    api = openai.OpenAI(
        base_url=f"http://127.0.0.1:{free_port}/openai/v1", api_key=ADMIN_KEY, max_retries=0
    )
    try:
        arrivals: list[tuple[float, str]] = []
        with api.chat.completions.create(
            model="openai:gpt-4o-mini",
            messages=[{"role": "user", "content": "go"}],
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        arrivals.append((time.monotonic(), choice.delta.content))
                usage = chunk.usage
        assert "".join(t for _, t in arrivals) == "alpha beta gamma delta epsilon zeta"
        assert len(arrivals) == 6
        assert arrivals[-1][0] - arrivals[0][0] > 0.3  # spread out, not one burst at the end
        assert usage is not None
        assert usage.completion_tokens == 6

        openai_sim.set_reply("gpt-4o-mini", " ".join(f"w{i}" for i in range(200)))
        openai_sim.token_delay_s = 0.02
        with (
            api.chat.completions.create(
                model="openai:gpt-4o-mini",
                messages=[{"role": "user", "content": "go"}],
                stream=True,
            ) as stream,
            pytest.raises(openai.APIError) as cancelled,
        ):
            cancel_after(stream, 3, f"http://127.0.0.1:{free_port}")
        assert isinstance(cancelled.value.body, dict)
        assert cancelled.value.body["code"] == "cancelled"
    finally:
        api.close()
        stop_server(proc, log_path)


async def test_openai_operations_document_and_answer_openai_errors(
    client: httpx.AsyncClient,
) -> None:
    """The walk of test_openapi_walk, in OpenAI's error shape instead of the envelope."""
    spec = (await client.get("/openapi.json")).json()
    operations = [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        if path.startswith("/openai/")
        for method, op in item.items()
    ]
    assert {(m, p) for m, p, _ in operations} == {
        ("POST", "/openai/v1/chat/completions"),
        ("POST", "/openai/v1/completions"),
        ("POST", "/openai/v1/images/generations"),
        ("GET", "/openai/v1/models"),
        ("GET", "/openai/v1/models/{model_id}"),
        ("POST", "/openai/v1/embeddings"),
        ("POST", "/openai/v1/responses"),
        ("GET", "/openai/v1/responses/{response_id}"),
        ("DELETE", "/openai/v1/responses/{response_id}"),
        ("GET", "/openai/v1/responses/{response_id}/input_items"),
    }
    for method, path, op in operations:
        for status in ("400", "401", "404", "422", "500", "503"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/OpenAIErrorResponse"), (method, path, status)
        url = path.replace("{model_id}", "does-not-exist").replace("{response_id}", "resp_x")
        anonymous = await client.request(method, url)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        garbage = await client.request(
            method,
            url,
            content=b"{not json",
            headers={**ADMIN, "content-type": "application/json"},
        )
        assert garbage.status_code < 500, (method, path, garbage.text)
        if garbage.status_code >= 400:
            assert set(garbage.json()) == {"error"}
            # A body the route reads is refused as such; the rest answer their unknown id.
            codes = {"invalid_json"} if method == "POST" else {"model_not_found", "not_found"}
            assert garbage.json()["error"]["code"] in codes, (method, path, garbage.text)
