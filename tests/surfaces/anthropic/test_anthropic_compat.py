"""The Anthropic-compatible surface (/anthropic/v1/messages) driven by the official
`anthropic` SDK: in-process over ASGI against the OpenAI and Anthropic simulators and
the bundled Gemma, and once against a real `pluggably serve` process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, client_for, make_settings, new_user, running
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.openai_sim import OpenAISim, make_png
from tests.fixtures.prompts import GREEDY, LONG_RUNNING

ADMIN = {"X-API-Key": ADMIN_KEY}
PNG = base64.b64encode(make_png(8, 8, "x")).decode()
GPT = "openai:gpt-4o-mini"
CLAUDE = "claude-3-5-haiku-latest"
GEMMA = "local/gemma"
HELLO = [{"role": "user", "content": "hello there"}]


def compat_app(
    tmp_path: Path,
    database_url: str,
    *,
    openai: OpenAISim | None = None,
    claude: AnthropicSim | None = None,
    **extra: Any,
) -> FastAPI:
    """The simulators as the openai / anthropic providers (server keys, for admins)."""
    providers: dict[str, Any] = {}
    if openai is not None:
        providers["openai"] = {"base_url": openai.base_url, "api_key": "sk-server-key-0001"}
    if claude is not None:
        providers["anthropic"] = {"base_url": claude.url, "api_key": "sk-ant-server-0001"}
    settings = make_settings(
        tmp_path, database_url, providers=providers, server_keys_allowed=["@admins"], **extra
    )
    return create_app(settings)


@asynccontextmanager
async def sdk(app: FastAPI, api_key: str = ADMIN_KEY) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The official async client, talking to the app in-process (the SDK uses httpx2)."""
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    http = httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=60)
    async with anthropic.AsyncAnthropic(
        base_url="http://testserver/anthropic", api_key=api_key, max_retries=0, http_client=http
    ) as client:
        yield client


def request_id(message_id: str) -> str:
    return "req_" + message_id.removeprefix("msg_")


async def raw_stream(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    async with http.stream(
        "POST", "/anthropic/v1/messages", json={**body, "stream": True}, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return (await response.aread()).decode()


async def stream_into(pieces: list[str], client: anthropic.AsyncAnthropic, **body: Any) -> None:
    async with client.messages.stream(**body) as stream:
        async for text in stream.text_stream:
            pieces.append(text)


def named_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every SSE event; each data's type matches its name."""
    events = []
    for block in text.strip().split("\n\n"):
        if block.startswith(":"):
            continue
        match = re.fullmatch(r"event: (\w+)\ndata: (.*)", block)
        assert match, block
        data = json.loads(match.group(2))
        assert data["type"] == match.group(1)
        events.append((match.group(1), data))
    return events


@dataclass
class Surface:
    """The gateway in process over a simulator: the app (for SDK clients with other keys),
    the SDK as the admin, and a plain client for the wire and the native routes."""

    app: FastAPI
    client: anthropic.AsyncAnthropic
    http: httpx.AsyncClient


@pytest.fixture
async def gpt(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[Surface]:
    """The OpenAI simulator as the upstream."""
    app = compat_app(tmp_path, database_url, openai=openai_sim)
    async with running(app), sdk(app) as client, client_for(app) as http:
        yield Surface(app, client, http)


async def test_plain_and_streamed_against_the_openai_simulator(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    client, http = gpt.client, gpt.http
    message = await client.messages.create(model=GPT, max_tokens=64, messages=HELLO)
    assert (message.type, message.role, message.model) == ("message", "assistant", GPT)
    assert message.id.startswith("msg_")
    assert [(b.type, b.text) for b in message.content] == [("text", "Echo: hello there")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert openai_sim.requests[-1].body["max_tokens"] == 64

    async with client.messages.stream(model=GPT, max_tokens=64, messages=HELLO) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1  # token by token
    assert "".join(pieces) == "Echo: hello there"
    assert final.content[0].text == "Echo: hello there"
    assert (final.model, final.stop_reason) == (GPT, "end_turn")
    assert final.usage.input_tokens == message.usage.input_tokens
    assert final.usage.output_tokens == message.usage.output_tokens

    events = await client.messages.create(model=GPT, max_tokens=64, messages=HELLO, stream=True)
    kinds = [event.type async for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]

    # Raw wire, with `x-api-key` as older SDKs send it: named events, a ping, no [DONE].
    headers = {"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"}
    text = await raw_stream(http, headers, model=GPT, max_tokens=64, messages=HELLO)
    assert "[DONE]" not in text
    names = [name for name, _ in named_events(text)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    delta = named_events(text)[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == message.usage.output_tokens

    # The same request records and metrics as the native route.
    record = await http.get(f"/v1/requests/{request_id(message.id)}", headers=ADMIN)
    assert record.status_code == 200, record.text
    assert (record.json()["status"], record.json()["model"]) == ("completed", GPT)
    assert record.json()["result"]["output"]["text"] == "Echo: hello there"
    metrics = (await http.get("/metrics", headers=ADMIN)).text
    counted = 'pluggably_generation_requests_total{model="gpt-4o-mini",provider="openai"} 4.0'
    assert counted in metrics


async def test_system_history_images_and_parameters_reach_anthropic(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    app = compat_app(tmp_path, database_url, claude=anthropic_sim)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    history: list[Any] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "an answer"}]},
        {"role": "user", "content": [image, {"type": "text", "text": "what is this?"}]},
    ]
    async with running(app), sdk(app) as client:
        message = await client.messages.create(
            model=CLAUDE,
            max_tokens=100,
            system="Be brief.",
            metadata={"user_id": "someone"},
            # Sampling fields are not in this SDK's signature any more; clients send them raw.
            extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5},  # top_k: ignored
            messages=history,
        )
        assert message.content[0].text == "[system] Echo: what is this? [1 images]"
        assert message.model == CLAUDE  # the id as the caller sent it
        sent = anthropic_sim.requests[-1].body
        assert (sent["model"], sent["system"], sent["max_tokens"]) == (CLAUDE, "Be brief.", 100)
        assert (sent["temperature"], sent["top_p"]) == (0.3, 0.9)
        assert "top_k" not in sent
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][-1]["content"][0]["source"]["data"] == PNG
        # The simulator counts words, 3 per message and 100 per image.
        assert message.usage.input_tokens == anthropic_sim_input(sent)

        blocks = [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]
        await client.messages.create(
            model=f"anthropic:{CLAUDE}", max_tokens=10, system=blocks, messages=HELLO
        )
        assert anthropic_sim.systems[-1] == "Part one.\n\nPart two."

        async with client.messages.stream(
            model=f"anthropic:{CLAUDE}", max_tokens=100, system="Be brief.", messages=history
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(pieces) == "[system] Echo: what is this? [1 images]"
        assert len(pieces) > 1
        assert final.usage.input_tokens == message.usage.input_tokens
        assert final.usage.output_tokens == len(pieces)


def anthropic_sim_input(sent: dict[str, Any]) -> int:
    words = len(sent.get("system", "").split())
    for m in sent["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        words += 3 + sum(len(b["text"].split()) for b in blocks if b["type"] == "text")
        words += 100 * sum(1 for b in blocks if b["type"] == "image")
    return words


async def test_stop_sequences_and_max_tokens(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    app = compat_app(tmp_path, database_url, claude=anthropic_sim)
    async with running(app), sdk(app) as client:
        anthropic_sim.set_reply(CLAUDE, "one two STOP three")
        stopped = await client.messages.create(
            model=CLAUDE, max_tokens=50, stop_sequences=["STOP"], messages=HELLO
        )
        assert stopped.content[0].text == "one two "
        assert anthropic_sim.requests[-1].body["stop_sequences"] == ["STOP"]
        assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "STOP")

        anthropic_sim.set_reply(CLAUDE, "a b c d e f")
        cut = await client.messages.create(model=CLAUDE, max_tokens=2, messages=HELLO)
        assert (cut.content[0].text, cut.stop_reason) == ("a b ", "max_tokens")
        assert cut.usage.output_tokens == 2
        async with client.messages.stream(model=CLAUDE, max_tokens=2, messages=HELLO) as stream:
            final = await stream.get_final_message()
        assert (final.content[0].text, final.stop_reason) == ("a b ", "max_tokens")


async def test_openai_simulator_sees_images_and_stops(gpt: Surface, openai_sim: OpenAISim) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    client = gpt.client
    message = await client.messages.create(
        model=GPT,
        max_tokens=32,
        system="Be brief.",
        stop_sequences=["\n\n"],
        messages=[{"role": "user", "content": [{"type": "text", "text": "look"}, image]}],
    )
    assert message.content[0].text == "Echo: look [1 image]"
    sent = openai_sim.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["stop"] == ["\n\n"]


async def create(client: anthropic.AsyncAnthropic, **body: Any) -> object:
    return await client.messages.create(**body)


async def final_of_stream(client: anthropic.AsyncAnthropic, **body: Any) -> object:
    async with client.messages.stream(**body) as stream:
        return await stream.get_final_message()


async def post_raw(client: anthropic.AsyncAnthropic, **body: Any) -> object:
    """Past the SDK's own checks (it would not send a message without max_tokens)."""
    return await client.post("/v1/messages", cast_to=object, body=body)


Send = Callable[..., Awaitable[object]]


@pytest.mark.parametrize(
    ("send", "fields", "error_class", "match"),
    [
        pytest.param(
            create,
            {"model": "local/no-such-model"},
            anthropic.NotFoundError,
            "no-such-model",
            id="unknown-model",
        ),
        pytest.param(  # the upstream's 404, streamed
            final_of_stream,
            {"model": "openai:gpt-unknown"},
            anthropic.NotFoundError,
            None,
            id="unknown-upstream-model-streamed",
        ),
        pytest.param(
            post_raw,
            {"max_tokens": None},
            anthropic.BadRequestError,
            "max_tokens",
            id="no-max-tokens",
        ),
        pytest.param(
            create,
            {"extra_body": {"temperature": 1.5}},
            anthropic.BadRequestError,
            "temperature",
            id="temperature-too-high",
        ),
        pytest.param(
            create,
            {"stop_sequences": ["x"] * 65},
            anthropic.BadRequestError,
            "stop_sequences: at most 64",
            id="too-many-stop-sequences",
        ),
        pytest.param(
            create,
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            anthropic.BadRequestError,
            r"Server tools are not supported here: web_search \(web_search_20250305\)",
            id="server-tools",
        ),
    ],
)
async def test_a_rejected_message_is_an_anthropic_error(
    gpt: Surface,
    send: Send,
    fields: dict[str, Any],
    error_class: type[anthropic.APIStatusError],
    match: str | None,
) -> None:
    """``fields`` over a valid message; a None drops the field."""
    body = {"model": GPT, "max_tokens": 8, "messages": HELLO, **fields}
    with pytest.raises(error_class, match=match):
        await send(gpt.client, **{k: v for k, v in body.items() if v is not None})


@pytest.mark.parametrize("send", [create, final_of_stream], ids=["plain", "streamed"])
async def test_an_upstream_429_before_the_first_token_is_a_rate_limit_error(
    gpt: Surface, openai_sim: OpenAISim, send: Send
) -> None:
    openai_sim.fail_next(status=429)
    with pytest.raises(anthropic.RateLimitError):  # streamed, a real 429 all the same
        await send(gpt.client, model=GPT, max_tokens=8, messages=HELLO)


async def test_a_stream_failing_after_its_first_tokens_ends_in_an_error_event(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "a b c d e f")
    openai_sim.break_stream_after(2)
    pieces: list[str] = []
    with pytest.raises(anthropic.APIStatusError):
        await stream_into(pieces, gpt.client, model=GPT, max_tokens=8, messages=HELLO)
    assert pieces == ["a ", "b "]


async def test_an_unknown_key_is_an_authentication_error(gpt: Surface) -> None:
    async with sdk(gpt.app, api_key="not-a-key") as stranger:
        with pytest.raises(anthropic.AuthenticationError):
            await stranger.messages.create(model=GPT, max_tokens=8, messages=HELLO)


async def test_a_read_only_token_may_not_send_messages(gpt: Surface) -> None:
    user = await new_user(gpt.http, "reader")
    made = await gpt.http.post(
        "/v1/users/tokens", json={"name": "ro", "scopes": ["read"]}, headers=user
    )
    assert made.status_code == 201, made.text
    async with sdk(gpt.app, api_key=made.json()["token"]) as reader:
        with pytest.raises(anthropic.PermissionDeniedError):
            await reader.messages.create(model=GPT, max_tokens=8, messages=HELLO)


async def test_bad_json_gets_the_whole_anthropic_envelope(gpt: Surface) -> None:
    bad_json = await gpt.http.post(
        "/anthropic/v1/messages",
        content=b"{not json",
        headers={**ADMIN, "content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert bad_json.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": bad_json.json()["error"]["message"],
        },
        "request_id": bad_json.headers["x-request-id"],
    }


async def test_a_missing_field_is_named_in_the_error(gpt: Surface) -> None:
    missing = await gpt.http.post(
        "/anthropic/v1/messages", json={"model": GPT, "max_tokens": 8}, headers=ADMIN
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "messages: Field required",
    }


@pytest.mark.parametrize(
    ("method", "path", "sent", "status", "error_type"),
    [
        pytest.param(
            "POST",
            "/anthropic/v1/messages",
            {"json": {"model": GPT, "max_tokens": 8, "messages": HELLO}},
            401,
            "authentication_error",
            id="no-key",
        ),
        pytest.param(
            "GET",
            "/anthropic/v1/no-such-route",
            {"headers": ADMIN},
            404,
            "not_found_error",
            id="unknown-route",
        ),
    ],
)
async def test_wire_errors_outside_the_sdk_are_anthropic_errors(
    gpt: Surface, method: str, path: str, sent: dict[str, Any], status: int, error_type: str
) -> None:
    answer = await gpt.http.request(method, path, **sent)
    assert answer.status_code == status
    assert answer.json()["error"]["type"] == error_type


async def test_the_native_routes_keep_their_own_envelope(gpt: Surface) -> None:
    native = await gpt.http.post("/v1/generate", json={"model": "local/nope"}, headers=ADMIN)
    assert set(native.json()) == {"detail"}


async def test_fallback_answers_when_the_first_choice_fails(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    backup.set_reply("gpt-4o-mini", "from the backup")
    app = compat_app(
        tmp_path,
        database_url,
        openai=openai_sim,
        endpoints={"backup": {"base_url": backup.base_url, "api_key": "sk-backup-0001"}},
        fallbacks={GPT: ["backup:gpt-4o-mini"]},
    )
    async with running(app), sdk(app) as client:
        openai_sim.fail_next(status=503)
        message = await client.messages.create(model=GPT, max_tokens=8, messages=HELLO)
        assert (message.model, message.content[0].text) == ("backup:gpt-4o-mini", "from the backup")
        openai_sim.down = True
        async with client.messages.stream(model=GPT, max_tokens=8, messages=HELLO) as stream:
            final = await stream.get_final_message()
        assert (final.model, final.content[0].text) == ("backup:gpt-4o-mini", "from the backup")


async def test_openapi_documents_the_surface(tmp_path: Path, database_url: str) -> None:
    app = compat_app(tmp_path, database_url)
    operation = app.openapi()["paths"]["/anthropic/v1/messages"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/AnthropicMessagesRequest"}
    responses = operation["responses"]
    assert "text/event-stream" in responses["200"]["content"]
    for status in ("400", "401", "404", "429", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/AnthropicError"}


# The bundled model: real llama.cpp inference.


def gemma_app(tmp_path: Path, database_url: str, gemma_gguf: Path, **extra: Any) -> FastAPI:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    os.link(gemma_gguf, models / "gemma.gguf")
    return create_app(make_settings(tmp_path, database_url, **extra))


FRANCE = [{"role": "user", "content": "The capital of France is"}]


@pytest.fixture
async def gemma(tmp_path: Path, database_url: str, gemma_gguf: Path) -> AsyncIterator[Surface]:
    """The bundled model as the upstream: real llama.cpp inference."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    async with running(app), sdk(app) as client, client_for(app, timeout=60) as http:
        yield Surface(app, client, http)


async def plain_gemma(client: anthropic.AsyncAnthropic) -> anthropic.types.Message:
    """Eight greedy tokens (sampled, the base model may end its turn within a few)."""
    return await client.messages.create(
        model=GEMMA, max_tokens=8, messages=FRANCE, extra_body=GREEDY
    )


@pytest.mark.slow
async def test_bundled_gemma_answers_a_plain_message(gemma: Surface) -> None:
    message = await plain_gemma(gemma.client)
    assert message.model == GEMMA
    assert message.content[0].text
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 8)
    assert message.usage.input_tokens > 5


@pytest.mark.slow
async def test_bundled_gemma_streams_token_by_token_with_the_system_prompt_counted(
    gemma: Surface,
) -> None:
    message = await plain_gemma(gemma.client)
    async with gemma.client.messages.stream(
        model=GEMMA,
        max_tokens=8,
        system="Answer briefly.",
        messages=FRANCE,
        extra_body=GREEDY,
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) >= 6
    assert final.content[0].text == "".join(pieces)
    assert (final.stop_reason, final.usage.output_tokens) == ("max_tokens", 8)
    assert final.usage.input_tokens > message.usage.input_tokens  # the system prompt


@pytest.mark.slow
async def test_bundled_gemma_busy_queues_the_sdk_requests_then_answers(gemma: Surface) -> None:
    """No 202 for an SDK: its plain and streamed requests wait in the model's queue."""
    client, http = gemma.client, gemma.http
    holder = asyncio.ensure_future(
        http.post(
            "/v1/generate",
            json={
                "model": GEMMA,
                "input": {"prompt": LONG_RUNNING},
                "parameters": {"max_tokens": 150, **GREEDY},
            },
            headers=ADMIN,
        )
    )
    for _ in range(500):
        status = await http.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)
        if status.json()["runtime_status"] == "busy":
            break
        await asyncio.sleep(0.02)
    assert status.json()["runtime_status"] == "busy"
    waiting = client.messages.create(model=GEMMA, max_tokens=4, messages=FRANCE, extra_body=GREEDY)
    streamed = raw_stream(http, ADMIN, model=GEMMA, max_tokens=4, messages=FRANCE, temperature=0)
    plain, text = await asyncio.gather(waiting, streamed)
    assert (plain.stop_reason, plain.usage.output_tokens) == ("max_tokens", 4)
    record = await http.get(f"/v1/requests/{request_id(plain.id)}", headers=ADMIN)
    assert record.json()["result"]["timings"]["queue_ms"] > 0  # it did wait its turn
    names = [name for name, _ in named_events(text)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"
    assert (await holder).status_code == 200


@pytest.mark.slow
def test_real_server_with_the_sync_client(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    from tests.serving.test_serve import start_server, stop_server

    proc, log_path = start_server(
        tmp_path,
        free_port,
        PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=openai_sim.base_url,
        PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
        PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
    )
    try:
        with anthropic.Anthropic(
            base_url=f"http://127.0.0.1:{free_port}/anthropic", api_key=ADMIN_KEY, max_retries=0
        ) as client:
            message = client.messages.create(model=GPT, max_tokens=16, messages=HELLO)
            assert message.content[0].text == "Echo: hello there"
            with client.messages.stream(
                model=GPT, max_tokens=16, system="Be brief.", messages=HELLO
            ) as stream:
                pieces = list(stream.text_stream)
                final = stream.get_final_message()
            assert len(pieces) > 1
            assert "".join(pieces) == final.content[0].text == "Echo: hello there"
            assert (final.stop_reason, final.model) == ("end_turn", GPT)
            assert final.usage.output_tokens == message.usage.output_tokens
            with pytest.raises(anthropic.NotFoundError):
                client.messages.create(model="local/nope", max_tokens=16, messages=HELLO)
    finally:
        stop_server(proc, log_path)
