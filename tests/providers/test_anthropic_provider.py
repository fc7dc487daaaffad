"""POST /v1/generate through the Anthropic Messages adapter against the Anthropic
simulator: the request it sends, JSON and SSE, image input, parameters, every error
class, broken streams, fallback to another provider, and the model list."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.errors import BackendUnavailable, UpstreamError
from pluggably.messages import Message
from pluggably.providers.anthropic import JSON_INSTRUCTION, AnthropicProvider
from pluggably.providers.base import Delta, ProviderCall
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    deltas,
    make_settings,
    running,
)
from tests.conftest import sse_frames as admin_sse_frames
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.canned import canned, upstream
from tests.fixtures.openai_sim import OpenAISim, make_png

ADMIN = {"X-API-Key": ADMIN_KEY}
PNG = base64.b64encode(make_png(8, 8, "x")).decode()
MODEL = "anthropic:claude-3-5-haiku-latest"
BARE = "claude-3-5-haiku-latest"
WHO = "anthropic (claude-3-5-haiku-latest)"
SERVER_KEY = "sk-ant-server-0001"


def gen_app(tmp_path: Path, database_url: str, sim: AnthropicSim, **extra: Any) -> FastAPI:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"anthropic": {"base_url": sim.url, "api_key": SERVER_KEY}},
        server_keys_allowed=["@admins"],
        **extra,
    )
    return create_app(settings)


@asynccontextmanager
async def serving(app: FastAPI, sim: AnthropicSim) -> AsyncIterator[httpx.AsyncClient]:
    """The app running with the adapter registered (before the directory wires it in)."""
    async with running(app), client_for(app) as client:
        container = app.state.container
        container.providers.register(AnthropicProvider("anthropic", container.http, sim.url))
        yield client


async def generate(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/generate", json=body, headers=ADMIN)


async def sse_frames(client: httpx.AsyncClient, **body: Any) -> list[Any]:
    return await admin_sse_frames(client, ADMIN, **body)


def sent(sim: AnthropicSim) -> Any:
    """The body of the last Messages request the simulator received."""
    return [r for r in sim.requests if r.path == "/v1/messages"][-1].body


def text_block(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def only(model: str, provider: str = "anthropic") -> dict[str, Any]:
    """The selection of a request served by its first candidate."""
    return {
        "selected_model": model,
        "selected_provider": provider,
        "fallback_used": False,
        "fallback_reason": None,
        "attempts": [{"model": model, "provider": provider, "error_code": None, "reason": None}],
    }


async def test_json_text_usage_and_wire_request(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    app = gen_app(tmp_path, database_url, anthropic_sim)
    async with serving(app, anthropic_sim) as client:
        response = await generate(client, model=MODEL, input={"prompt": "hello there"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["text"] == "Echo: hello there"
        assert (body["model"], body["provider"], body["modality"]) == (MODEL, "anthropic", "text")
        assert body["finish_reason"] == "stop"
        # 3 per message + 2 words in; "Echo: ", "hello ", "there" out.
        assert body["usage"] == {
            "prompt_tokens": 5,
            "completion_tokens": 3,
            "total_tokens": 8,
            "cost_usd": 1.6e-05,
        }
        assert body["selection"] == only(MODEL)
        request = anthropic_sim.requests[-1]
        assert (request.method, request.path) == ("POST", "/v1/messages")
        assert request.headers["x-api-key"] == SERVER_KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.headers["content-type"] == "application/json"
        assert "authorization" not in request.headers
        assert request.body == {
            "model": BARE,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": [text_block("hello there")]}],
        }
        record = (await client.get(f"/v1/requests/{body['request_id']}", headers=ADMIN)).json()
        assert record["status"] == "completed"
        assert record["result"]["output"]["text"] == "Echo: hello there"
        # A bare Claude model name finds the vendor.
        bare = await generate(client, model=BARE, input={"prompt": "hi"})
        assert bare.status_code == 200, bare.text
        assert (bare.json()["model"], bare.json()["output"]["text"]) == (BARE, "Echo: hi")
        assert bare.json()["selection"] == only(MODEL)


async def test_system_prompt_and_alternating_turns(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    app = gen_app(tmp_path, database_url, anthropic_sim)
    history = [
        {"role": "system", "content": "Speak plainly."},
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "third"},
    ]
    async with serving(app, anthropic_sim) as client:
        response = await generate(
            client, model=MODEL, system_prompt="Be brief.", input={"messages": history}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["text"] == "[system] Echo: third"
        # system 4 words; turns (3+2) + (3+1) + (3+1).
        assert body["usage"] == {
            "prompt_tokens": 17,
            "completion_tokens": 3,
            "total_tokens": 20,
            "cost_usd": 2.56e-05,
        }
        assert sent(anthropic_sim) == {
            "model": BARE,
            "max_tokens": 1024,
            "system": "Be brief.\n\nSpeak plainly.",
            "messages": [
                {"role": "user", "content": [text_block("first"), text_block("second")]},
                {"role": "assistant", "content": [text_block("ok")]},
                {"role": "user", "content": [text_block("third")]},
            ],
        }
        assert anthropic_sim.systems == ["Be brief.\n\nSpeak plainly."]


async def test_image_input(tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim) -> None:
    app = gen_app(tmp_path, database_url, anthropic_sim)
    async with serving(app, anthropic_sim) as client:
        response = await generate(
            client,
            model=BARE,
            input={"prompt": "what is this", "images": [PNG, f"data:image/png;base64,{PNG}"]},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["text"] == "Echo: what is this [2 images]"
        assert body["usage"] == {
            "prompt_tokens": 3 + 3 + 2 * 100,
            "completion_tokens": 6,
            "total_tokens": 212,
            "cost_usd": 0.0001888,
        }
        image = {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
        }
        assert sent(anthropic_sim)["messages"] == [
            {"role": "user", "content": [image, image, text_block("what is this")]}
        ]


async def test_parameters(tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim) -> None:
    app = gen_app(tmp_path, database_url, anthropic_sim)
    prompt = {"prompt": "one two three four"}
    async with serving(app, anthropic_sim) as client:
        # max_tokens cuts the answer: "Echo: " "one " of "Echo: one two three four".
        capped = await generate(
            client,
            model=MODEL,
            input=prompt,
            parameters={"max_tokens": 2, "temperature": 0.2, "top_p": 0.9, "seed": 7},
        )
        assert capped.status_code == 200, capped.text
        assert capped.json()["output"]["text"] == "Echo: one "
        assert capped.json()["finish_reason"] == "length"
        assert capped.json()["usage"] == {
            "prompt_tokens": 7,
            "completion_tokens": 2,
            "total_tokens": 9,
            "cost_usd": 1.36e-05,
        }
        body = sent(anthropic_sim)
        assert (body["max_tokens"], body["temperature"], body["top_p"]) == (2, 0.2, 0.9)
        assert "seed" not in body  # no Anthropic equivalent; the API would reject it
        # A stop sequence, as a list and as a string; the API leaves it out of the text.
        for stop, stop_sequences in ((["three", "four"], ["three", "four"]), ("two", ["two"])):
            stopped = await generate(client, model=MODEL, input=prompt, parameters={"stop": stop})
            assert stopped.status_code == 200, stopped.text
            expected = "Echo: one two " if stop_sequences[0] == "three" else "Echo: one "
            assert stopped.json()["output"]["text"] == expected
            assert stopped.json()["finish_reason"] == "stop"
            assert sent(anthropic_sim)["stop_sequences"] == stop_sequences
        # Anthropic's temperature ends at 1 where the gateway's schema allows 2.
        hot = await generate(client, model=MODEL, input=prompt, parameters={"temperature": 1.5})
        assert hot.status_code == 200, hot.text
        assert sent(anthropic_sim)["temperature"] == 1.0


async def test_json_format_asks_in_the_system_prompt(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    anthropic_sim.set_reply(BARE, '{"answer": 42}')
    app = gen_app(tmp_path, database_url, anthropic_sim)
    async with serving(app, anthropic_sim) as client:
        plain = await generate(
            client, model=MODEL, input={"prompt": "the answer"}, parameters={"format": "json"}
        )
        assert plain.status_code == 200, plain.text
        assert json.loads(plain.json()["output"]["text"]) == {"answer": 42}
        assert sent(anthropic_sim)["system"] == JSON_INSTRUCTION
        with_system = await generate(
            client,
            model=MODEL,
            system_prompt="You are terse.",
            input={"prompt": "the answer"},
            parameters={"format": "json"},
        )
        assert with_system.status_code == 200, with_system.text
        assert sent(anthropic_sim)["system"] == f"You are terse.\n\n{JSON_INSTRUCTION}"
        assert anthropic_sim.systems == [JSON_INSTRUCTION, f"You are terse.\n\n{JSON_INSTRUCTION}"]


async def test_streaming_frames(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    anthropic_sim.set_reply(BARE, "one two three four five")
    app = gen_app(tmp_path, database_url, anthropic_sim)
    async with serving(app, anthropic_sim) as client:
        plain = (await generate(client, model=MODEL, input={"prompt": "count"})).json()
        frames = await sse_frames(client, model=MODEL, input={"prompt": "count"})
        assert sent(anthropic_sim)["stream"] is True
        selected = frames[0]
        assert selected == {
            "event": "model_selected",
            "request_id": selected["request_id"],
            "model": MODEL,
            "provider": "anthropic",
            "modality": "text",
            "fallback_used": False,
            "fallback_reason": None,
        }
        assert deltas(frames) == ["one ", "two ", "three ", "four ", "five"]
        assert frames[1:-2] == [{"choices": [{"delta": {"content": d}}]} for d in deltas(frames)]
        assert "".join(deltas(frames)) == plain["output"]["text"]
        complete = frames[-2]
        assert complete["event"] == "complete"
        assert complete["request_id"] == selected["request_id"]
        assert complete["usage"] == {
            "prompt_tokens": 4,
            "completion_tokens": 5,
            "total_tokens": 9,
            "cost_usd": 2.32e-05,
        }
        assert complete["usage"] == plain["usage"]
        assert complete["finish_reason"] == "stop"
        assert complete["selection"] == only(MODEL)
        assert "text" not in complete["output"]
        assert complete["timings"]["first_token_ms"] > 0
        assert frames[-1] == "[DONE]"
        record = (await client.get(f"/v1/requests/{complete['request_id']}", headers=ADMIN)).json()
        assert record["result"]["output"]["text"] == "one two three four five"
        # max_tokens in a stream: the finish reason comes from message_delta.
        capped = await sse_frames(
            client, model=BARE, input={"prompt": "count"}, parameters={"max_tokens": 3}
        )
        assert deltas(capped) == ["one ", "two ", "three "]
        assert capped[-2]["finish_reason"] == "length"
        assert capped[-2]["usage"] == {
            "prompt_tokens": 4,
            "completion_tokens": 3,
            "total_tokens": 7,
            "cost_usd": 1.52e-05,
        }
        assert capped[-1] == "[DONE]"


def _keys(sim: AnthropicSim) -> None:
    sim.valid_keys = {"sk-ant-someone-else"}


CLOSED = "it closed the connection without an answer"


def _down(sim: AnthropicSim) -> None:
    sim.down = True


def _hung(sim: AnthropicSim) -> None:
    sim.delay_s = 2.0


def _heal(sim: AnthropicSim) -> None:
    sim.valid_keys, sim.down, sim.delay_s = None, False, 0.0


@pytest.mark.parametrize(
    ("fault", "status", "code", "message"),
    [
        (
            _keys,
            502,
            "upstream_error",
            f"{WHO} refused your credential: invalid x-api-key. Check the key stored for "
            "anthropic (POST /v1/users/provider-keys).",
        ),
        (
            lambda sim: sim.fail_next(status=404),
            404,
            "model_not_found",
            f"{WHO} has no such model: Not Found.",
        ),
        (
            lambda sim: sim.fail_next(status=429, retry_after=7),
            429,
            "rate_limited",
            f"{WHO} is rate limiting requests: Number of request tokens has exceeded your "
            "per-minute rate limit.",
        ),
        (
            lambda sim: sim.fail_next(status=500),
            503,
            "backend_unavailable",
            f"{WHO} is failing (HTTP 500): Internal server error.",
        ),
        (
            lambda sim: sim.fail_next(status=529),
            503,
            "backend_unavailable",
            f"{WHO} is failing (HTTP 529): Overloaded.",
        ),
        (
            lambda sim: sim.fail_next(status=400),
            400,
            "invalid_parameter",
            f"{WHO} rejected the request: Invalid request.",
        ),
        (
            lambda sim: sim.garbage_next(),
            503,
            "backend_unavailable",
            f"{WHO} sent a malformed answer: not JSON.",
        ),
        (
            _down,
            503,
            "backend_unavailable",
            f"{WHO} is unreachable ({CLOSED}).",
        ),
        (_hung, 504, "timeout", f"{WHO} did not answer in time."),
    ],
    ids=["bad-key", "404", "429", "500", "529-overloaded", "400", "garbage", "down", "hung"],
)
async def test_upstream_errors_map_to_codes(
    tmp_path: Path,
    database_url: str,
    anthropic_sim: AnthropicSim,
    fault: Callable[[AnthropicSim], None],
    status: int,
    code: str,
    message: str,
) -> None:
    app = gen_app(tmp_path, database_url, anthropic_sim, upstream_timeout_s=0.5)
    async with serving(app, anthropic_sim) as client:
        fault(anthropic_sim)
        response = await generate(client, model=MODEL, input={"prompt": "x"})
        detail = assert_envelope(response, status, code)
        assert detail["message"] == message
        retry_after = {"rate_limited": 7, "backend_unavailable": 5}.get(code)
        assert detail["retry_after"] == retry_after
        assert response.headers.get("retry-after") == (str(retry_after) if retry_after else None)
        # The same failure before a stream's first token: an error frame, then [DONE].
        fault(anthropic_sim)
        frames = await sse_frames(client, model=MODEL, input={"prompt": "x"})
        if code == "backend_unavailable" and "malformed" in message:
            message = f"{WHO} sent a malformed answer: a stream event is not JSON."
        assert frames[0].pop("request_id").startswith("req_")  # no model_selected came
        assert frames == [{"event": "error", "code": code, "message": message}, "[DONE]"]
        _heal(anthropic_sim)
        frames = await sse_frames(client, model=MODEL, input={"prompt": "x"})
        assert frames[-2]["event"] == "complete"  # and streams work again afterwards
        assert frames[-1] == "[DONE]"


async def test_stream_broken_after_two_deltas(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> None:
    anthropic_sim.set_reply(BARE, "a b c d e f")
    app = gen_app(tmp_path, database_url, anthropic_sim)
    async with serving(app, anthropic_sim) as client:
        anthropic_sim.break_stream_after(2)
        frames = await sse_frames(client, model=MODEL, input={"prompt": "x"})
        assert frames[0]["event"] == "model_selected"
        assert frames[1:] == [
            {"choices": [{"delta": {"content": "a "}}]},
            {"choices": [{"delta": {"content": "b "}}]},
            {
                "event": "error",
                "code": "backend_unavailable",
                "message": f"{WHO} is unreachable (the answer was cut off).",
            },
            "[DONE]",
        ]
        request_id = frames[0]["request_id"]
        status = (await client.get(f"/v1/requests/{request_id}/status", headers=ADMIN)).json()
        assert status["status"] == "failed"


@pytest.mark.parametrize(
    ("error_type", "upstream_message", "code", "message"),
    [
        (
            "overloaded_error",
            "Overloaded",
            "backend_unavailable",
            f"{WHO} is overloaded: Overloaded.",
        ),
        (
            "api_error",
            "Internal server error",
            "backend_unavailable",
            f"{WHO} sent a malformed answer: an error event (api_error: Internal server error).",
        ),
        (
            "rate_limit_error",
            "Slow down",
            "rate_limited",
            f"{WHO} is rate limiting requests: Slow down.",
        ),
    ],
    ids=["overloaded", "api-error", "rate-limit"],
)
async def test_error_event_mid_stream(
    tmp_path: Path,
    database_url: str,
    anthropic_sim: AnthropicSim,
    error_type: str,
    upstream_message: str,
    code: str,
    message: str,
) -> None:
    anthropic_sim.set_reply(BARE, "a b c d e f")
    app = gen_app(tmp_path, database_url, anthropic_sim)
    async with serving(app, anthropic_sim) as client:
        anthropic_sim.error_event_next(2, error_type, upstream_message)
        frames = await sse_frames(client, model=MODEL, input={"prompt": "x"})
        assert frames[0]["event"] == "model_selected"
        assert frames[1:] == [
            {"choices": [{"delta": {"content": "a "}}]},
            {"choices": [{"delta": {"content": "b "}}]},
            {"event": "error", "code": code, "message": message},
            "[DONE]",
        ]
        request_id = frames[0]["request_id"]
        record = (await client.get(f"/v1/requests/{request_id}/status", headers=ADMIN)).json()
        assert record["status"] == "failed"


async def test_fallback_from_anthropic_to_openai_compatible_backup(
    tmp_path: Path,
    database_url: str,
    anthropic_sim: AnthropicSim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    backup.set_reply("gpt-4o-mini", "from the backup")
    app = gen_app(
        tmp_path,
        database_url,
        anthropic_sim,
        endpoints={"backup": {"base_url": backup.base_url, "api_key": "sk-b-0001"}},
        fallbacks={MODEL: ["backup:gpt-4o-mini"]},
    )
    failed_over = {
        "selected_model": "backup:gpt-4o-mini",
        "selected_provider": "backup",
        "fallback_used": True,
        "fallback_reason": "anthropic failed with rate_limited",
        "attempts": [
            {"model": MODEL, "provider": "anthropic", "error_code": "rate_limited", "reason": None},
            {
                "model": "backup:gpt-4o-mini",
                "provider": "backup",
                "error_code": None,
                "reason": None,
            },
        ],
    }
    async with serving(app, anthropic_sim) as client:
        anthropic_sim.fail_next(status=429)
        response = await generate(client, model=MODEL, input={"prompt": "x"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["output"]["text"]) == ("backup:gpt-4o-mini", "from the backup")
        assert body["selection"] == failed_over
        sent_backup = backup.requests_to("/v1/chat/completions")[-1]
        assert sent_backup.headers["authorization"] == "Bearer sk-b-0001"
        # A rate-limit error event before the first token fails a stream over too.
        anthropic_sim.error_event_next(0, "rate_limit_error", "Slow down")
        frames = await sse_frames(client, model=MODEL, input={"prompt": "x"})
        assert (frames[0]["provider"], frames[0]["fallback_used"]) == ("backup", True)
        assert frames[0]["fallback_reason"] == "anthropic failed with rate_limited"
        assert deltas(frames) == ["from ", "the ", "backup"]
        assert frames[-2]["event"] == "complete"
        assert frames[-2]["selection"] == failed_over
        assert frames[-1] == "[DONE]"
        # Not retryable: a rejected request does not fall back.
        anthropic_sim.fail_next(status=400)
        assert_envelope(
            await generate(client, model=MODEL, input={"prompt": "x"}), 400, "invalid_parameter"
        )


async def test_list_models_pages_through_the_cursor(anthropic_sim: AnthropicSim) -> None:
    extra = [f"claude-test-{i:03d}" for i in range(150)]
    for model_id in extra:
        anthropic_sim.add_model(model_id)
    async with upstream() as client:
        provider = AnthropicProvider("anthropic", client, anthropic_sim.url + "/")
        models = await provider.list_models({"api_key": SERVER_KEY})
        assert models == sorted(
            [
                "claude-3-5-haiku-latest",
                "claude-haiku-4-5",
                "claude-sonnet-4-6",
                "claude-opus-4-7",
                *extra,
            ]
        )
        # Listed newest first: the 100th model ends page one and is the cursor for page two.
        assert [(r.method, r.path) for r in anthropic_sim.requests] == [
            ("GET", "/v1/models?limit=100"),
            ("GET", "/v1/models?limit=100&after_id=claude-test-095"),
        ]
        assert anthropic_sim.requests[0].headers["x-api-key"] == SERVER_KEY
        assert anthropic_sim.requests[0].headers["anthropic-version"] == "2023-06-01"
        anthropic_sim.valid_keys = {"sk-ant-someone-else"}
        with pytest.raises(UpstreamError) as refused:
            await provider.list_models({"api_key": SERVER_KEY})
        assert refused.value.message == (
            "anthropic (models) refused your credential: invalid x-api-key. Check the key "
            "stored for anthropic (POST /v1/users/provider-keys)."
        )
        anthropic_sim.valid_keys, anthropic_sim.down = None, True
        with pytest.raises(BackendUnavailable) as unreachable:
            await provider.list_models({"api_key": SERVER_KEY})
        assert unreachable.value.message == f"anthropic (models) is unreachable ({CLOSED})."


async def test_stream_that_ends_without_message_stop_is_malformed() -> None:
    """A proxy that closes the body cleanly mid-answer: no transport error, yet no end."""
    frames: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 4, "output_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a "}},
    ]
    body = "".join(f"event: {f['type']}\ndata: {json.dumps(f)}\n\n" for f in frames)

    def answer() -> web.Response:
        return web.Response(text=body, content_type="text/event-stream")

    async with canned(answer) as url, upstream() as client:
        provider = AnthropicProvider("anthropic", client, url)
        call = ProviderCall(BARE, [Message("user", "x")])
        answer_stream = provider.stream(call, {"api_key": SERVER_KEY})
        assert await anext(answer_stream) == Delta("a ")
        with pytest.raises(BackendUnavailable) as ended:
            await anext(answer_stream)
        assert ended.value.message == f"{WHO} sent a malformed answer: the stream ended early."
