"""POST /v1/generate through the Gemini adapter against the Gemini simulator: JSON and
SSE, system prompt, images, parameters, credentials, every error class, fallback; the
model list and the answers the simulator cannot give, on the adapter itself."""

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
from pluggably.errors import (
    BackendUnavailable,
    InvalidParameter,
    ModelNotFound,
    RateLimited,
    UpstreamError,
)
from pluggably.messages import Message
from pluggably.providers import google
from pluggably.providers.base import Delta, ProviderCall, ReasoningDelta, StreamEnd, Usage
from pluggably.providers.google import GoogleProvider
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    deltas,
    generate,
    make_settings,
    new_user,
    running,
    sse_frames,
)
from tests.fixtures.canned import canned, upstream
from tests.fixtures.gemini_sim import GeminiSim
from tests.fixtures.openai_sim import OpenAISim, make_png

ADMIN = {"X-API-Key": ADMIN_KEY}
SERVER_KEY = "server-google-key-0001"
PNG = base64.b64encode(make_png(8, 8, "x")).decode()
MODEL = "google:gemini-2.0-flash"
GENERATE = "/v1beta/models/gemini-2.0-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "demo",
    "private_key_id": "0123456789abcdef0123",
    "private_key": (
        "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    ),
    "client_email": "bot@demo.iam.gserviceaccount.com",
}


@asynccontextmanager
async def google_app(
    tmp_path: Path, database_url: str, sim: GeminiSim, **extra: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"google": {"base_url": sim.url, "api_key": SERVER_KEY}},
        server_keys_allowed=["@admins"],
        **extra,
    )
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        # Registered on the live app, so this holds before the directory wires it in.
        container = app.state.container
        container.providers.register(GoogleProvider("google", container.http, sim.url))
        yield app, client


def last_to(sim: GeminiSim, path: str) -> Any:
    return [r for r in sim.requests if r.path == path][-1]


async def test_json_text_usage_and_key_header(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(client, ADMIN, model=MODEL, input={"prompt": "hello brave world"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["text"] == "Echo: hello brave world"
        assert (body["model"], body["provider"], body["modality"]) == (MODEL, "google", "text")
        assert body["finish_reason"] == "stop"
        assert body["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "cost_usd": 1.9e-06,
        }
        assert body["selection"] == {
            "selected_model": MODEL,
            "selected_provider": "google",
            "fallback_used": False,
            "fallback_reason": None,
            "attempts": [
                {"model": MODEL, "provider": "google", "error_code": None, "reason": None}
            ],
        }
        sent = last_to(gemini_sim, GENERATE)
        assert sent.method == "POST"
        assert sent.body == {
            "contents": [{"role": "user", "parts": [{"text": "hello brave world"}]}]
        }
        # A bare Gemini model name finds Google.
        bare = await generate(client, ADMIN, model="gemini-2.0-flash", input={"prompt": "hi"})
        assert bare.json()["model"] == "gemini-2.0-flash"  # as asked
        assert bare.json()["output"]["text"] == "Echo: hi"
        # The key travels as a header and never in a URL (URLs end up in logs).
        assert len(gemini_sim.requests) == 2
        for request in gemini_sim.requests:
            assert request.headers["x-goog-api-key"] == SERVER_KEY
            assert "authorization" not in request.headers
            assert "key=" not in request.path
            assert SERVER_KEY not in request.path


async def test_system_prompt_history_and_images(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        history = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
            {"role": "user", "content": "third"},
        ]
        response = await generate(
            client, ADMIN, model=MODEL, system_prompt="Be brief.", input={"messages": history}
        )
        body = response.json()
        assert body["output"]["text"] == "[system] Echo: second third"
        assert body["usage"]["prompt_tokens"] == 6  # every turn and the instruction
        assert last_to(gemini_sim, GENERATE).body == {
            "contents": [
                {"role": "user", "parts": [{"text": "first"}]},
                {"role": "model", "parts": [{"text": "ok"}]},
                {"role": "user", "parts": [{"text": "second"}, {"text": "third"}]},
            ],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
        }
        vision = await generate(
            client,
            ADMIN,
            model="gemini-2.0-flash",
            input={"prompt": "what is this", "images": [PNG, f"data:image/png;base64,{PNG}"]},
        )
        assert vision.json()["output"]["text"] == "Echo: what is this [2 images]"
        assert vision.json()["usage"]["prompt_tokens"] == 3 + 2 * 258
        image = {"inlineData": {"mimeType": "image/png", "data": PNG}}
        assert last_to(gemini_sim, GENERATE).body["contents"] == [
            {"role": "user", "parts": [image, image, {"text": "what is this"}]}
        ]


async def test_parameters_length_stop_and_json(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        cut = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"prompt": "one two three four five"},
            parameters={"max_tokens": 2, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": "#"},
        )
        body = cut.json()
        assert (body["output"]["text"], body["finish_reason"]) == ("Echo: one ", "length")
        assert body["usage"] == {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "total_tokens": 7,
            "cost_usd": 1.3e-06,
        }
        assert last_to(gemini_sim, GENERATE).body["generationConfig"] == {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 2,
            "seed": 7,
            "stopSequences": ["#"],
        }
        gemini_sim.set_reply("gemini-2.0-flash", "alpha beta. gamma delta")
        stopped = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "x"}, parameters={"stop": [".", "!"]}
        )
        assert (stopped.json()["output"]["text"], stopped.json()["finish_reason"]) == (
            "alpha beta",
            "stop",
        )
        assert last_to(gemini_sim, GENERATE).body["generationConfig"] == {
            "stopSequences": [".", "!"]
        }
        gemini_sim.set_reply("gemini-2.0-flash", None)
        as_json = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "give json"}, parameters={"format": "json"}
        )
        assert json.loads(as_json.json()["output"]["text"]) == {"text": "Echo: give json"}
        assert last_to(gemini_sim, GENERATE).body["generationConfig"] == {
            "responseMimeType": "application/json"
        }


@pytest.mark.parametrize("model", [MODEL, "gemini-2.0-flash"])
async def test_streaming_frames(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim, model: str
) -> None:
    gemini_sim.set_reply("gemini-2.0-flash", "one two three four five")
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        whole = (await generate(client, ADMIN, model=model, input={"prompt": "count"})).json()
        frames = await sse_frames(client, ADMIN, model=model, input={"prompt": "count"})
        assert last_to(gemini_sim, STREAM).headers["x-goog-api-key"] == SERVER_KEY
        assert frames[0]["event"] == "model_selected"
        assert (frames[0]["model"], frames[0]["provider"]) == (MODEL, "google")
        assert deltas(frames) == ["one ", "two ", "three ", "four ", "five"]
        assert "".join(deltas(frames)) == whole["output"]["text"]
        assert len(frames) == 1 + 5 + 2
        complete = frames[-2]
        assert complete["event"] == "complete"
        assert complete["finish_reason"] == "stop"
        assert complete["usage"] == {
            "prompt_tokens": 1,
            "completion_tokens": 5,
            "total_tokens": 6,
            "cost_usd": 2.1e-06,
        }
        assert "text" not in complete["output"]
        assert frames[-1] == "[DONE]"
        record = (await client.get(f"/v1/requests/{complete['request_id']}", headers=ADMIN)).json()
        assert record["result"]["output"]["text"] == "one two three four five"
        capped = await sse_frames(
            client, ADMIN, model=model, input={"prompt": "x"}, parameters={"max_tokens": 3}
        )
        assert deltas(capped) == ["one ", "two ", "three "]
        assert capped[-2]["finish_reason"] == "length"


def bad_key(sim: GeminiSim) -> None:
    sim.valid_keys = {"some-other-key"}


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (bad_key, 502, "upstream_error"),
        (lambda sim: sim.fail_next(status=404), 404, "model_not_found"),
        (lambda sim: sim.fail_next(status=429, retry_after=7), 429, "rate_limited"),
        (lambda sim: sim.fail_next(status=500), 503, "backend_unavailable"),
        (lambda sim: sim.fail_next(status=503), 503, "backend_unavailable"),
        (lambda sim: sim.fail_next(status=400), 400, "invalid_parameter"),
        (lambda sim: sim.garbage_next(), 503, "backend_unavailable"),
        (lambda sim: setattr(sim, "down", True), 503, "backend_unavailable"),
        (lambda sim: setattr(sim, "delay_s", 2.0), 504, "timeout"),
    ],
    ids=["bad-key", "404", "429", "500", "503", "400", "garbage", "down", "hung"],
)
async def test_upstream_errors_map_to_codes(
    tmp_path: Path,
    database_url: str,
    gemini_sim: GeminiSim,
    fault: Callable[[GeminiSim], None],
    status: int,
    code: str,
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim, upstream_timeout_s=0.5) as (
        _,
        client,
    ):
        fault(gemini_sim)
        response = await generate(client, ADMIN, model=MODEL, input={"prompt": "x"})
        detail = assert_envelope(response, status, code)
        assert "google (gemini-2.0-flash)" in detail["message"]
        if code == "rate_limited":
            assert response.headers["retry-after"] == "7"
        if code == "upstream_error":
            assert "refused your credential: API key not valid" in detail["message"]
        fault(gemini_sim)  # the same failure before the first frame of a stream
        frames = await sse_frames(client, ADMIN, model=MODEL, input={"prompt": "x"})
        assert len(frames) == 2
        assert (frames[0]["event"], frames[0]["code"]) == ("error", code)
        assert frames[1] == "[DONE]"
        gemini_sim.valid_keys, gemini_sim.down, gemini_sim.delay_s = None, False, 0.0
        frames = await sse_frames(client, ADMIN, model=MODEL, input={"prompt": "x"})
        assert frames[-2]["event"] == "complete"  # and streams work again afterwards


async def test_unknown_model_is_model_not_found(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client, ADMIN, model="google:gemini-9-nope", input={"prompt": "x"}
        )
        detail = assert_envelope(response, 404, "model_not_found")
        assert "models/gemini-9-nope is not found" in detail["message"]


async def test_stream_broken_after_two_frames_is_an_error_frame(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    gemini_sim.set_reply("gemini-2.0-flash", "a b c d e f")
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        gemini_sim.break_stream_after(2)
        frames = await sse_frames(client, ADMIN, model=MODEL, input={"prompt": "x"})
        assert frames[0]["event"] == "model_selected"
        assert deltas(frames) == ["a ", "b "]
        assert (frames[-2]["event"], frames[-2]["code"]) == ("error", "backend_unavailable")
        assert frames[-1] == "[DONE]"
        request_id = frames[0]["request_id"]
        record = (await client.get(f"/v1/requests/{request_id}/status", headers=ADMIN)).json()
        assert record["status"] == "failed"


async def test_users_oauth_token_is_a_bearer_header(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        user = await new_user(client, "oauth-user")
        stored = await client.post(
            "/v1/users/provider-keys",
            json={
                "provider": "google",
                "credential_type": "oauth_token",
                "oauth_token": "ya29.user-oauth-token-0001",
            },
            headers=user,
        )
        assert stored.status_code in {200, 201}, stored.text
        response = await generate(client, user, model=MODEL, input={"prompt": "x"})
        sent = last_to(gemini_sim, GENERATE)
        assert sent.headers["authorization"] == "Bearer ya29.user-oauth-token-0001"
        assert "x-goog-api-key" not in sent.headers
        assert "key=" not in sent.path
        # The simulator knows API keys only, so it refuses the token as Google refuses a
        # bad one (403): that is the user's credential problem, said as such.
        detail = assert_envelope(response, 502, "upstream_error")
        assert "refused your credential" in detail["message"]


async def test_service_account_is_not_supported_yet(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        user = await new_user(client, "robot-owner")
        stored = await client.post(
            "/v1/users/provider-keys",
            json={
                "provider": "google",
                "credential_type": "service_account",
                "service_account_json": json.dumps(SERVICE_ACCOUNT),
            },
            headers=user,
        )
        assert stored.status_code in {200, 201}, stored.text
        response = await generate(client, user, model=MODEL, input={"prompt": "x"})
        detail = assert_envelope(response, 400, "feature_not_supported")
        assert "store an api_key or oauth_token" in detail["message"]
        frames = await sse_frames(client, user, model=MODEL, input={"prompt": "x"})
        assert [(f["event"], f["code"]) for f in frames[:-1]] == [
            ("error", "feature_not_supported")
        ]
        assert frames[-1] == "[DONE]"
        assert gemini_sim.requests == []  # refused before anything was sent


async def test_fallback_from_google_to_an_openai_compatible_backup(
    tmp_path: Path,
    database_url: str,
    gemini_sim: GeminiSim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    backup.set_reply("gpt-4o-mini", "from the backup")
    async with google_app(
        tmp_path,
        database_url,
        gemini_sim,
        endpoints={"backup": {"base_url": backup.base_url, "api_key": "sk-b-0001"}},
        fallbacks={MODEL: ["backup:gpt-4o-mini"]},
    ) as (_, client):
        gemini_sim.fail_next(status=429)
        body = (await generate(client, ADMIN, model=MODEL, input={"prompt": "x"})).json()
        assert body["output"]["text"] == "from the backup"
        assert body["selection"] == {
            "selected_model": "backup:gpt-4o-mini",
            "selected_provider": "backup",
            "fallback_used": True,
            "fallback_reason": "google failed with rate_limited",
            "attempts": [
                {
                    "model": MODEL,
                    "provider": "google",
                    "error_code": "rate_limited",
                    "reason": None,
                },
                {
                    "model": "backup:gpt-4o-mini",
                    "provider": "backup",
                    "error_code": None,
                    "reason": None,
                },
            ],
        }
        gemini_sim.fail_next(status=429)
        frames = await sse_frames(client, ADMIN, model=MODEL, input={"prompt": "x"})
        assert (frames[0]["provider"], frames[0]["fallback_used"]) == ("backup", True)
        assert "".join(deltas(frames)) == "from the backup"
        assert frames[-2]["event"] == "complete"
        assert len([r for r in gemini_sim.requests if r.path == STREAM]) == 1


# -- the adapter itself -------------------------------------------------------------------------
async def test_list_models_pages_and_filters(gemini_sim: GeminiSim) -> None:
    gemini_sim.add_model("gemini-1.5-pro")
    gemini_sim.add_model("text-embedding-004", supportedGenerationMethods=["embedContent"])
    gemini_sim.add_model("aqa", supportedGenerationMethods=["generateAnswer"])
    async with upstream() as http:
        provider = GoogleProvider("google", http, gemini_sim.url + "/")
        provider.page_size = 2
        listed = await provider.list_models({"api_key": SERVER_KEY})
        assert listed == [
            "gemini-1.5-pro",
            "gemini-2.0-flash",
            "gemini-2.5-flash",
            "text-embedding-004",
        ]
        pages = [r for r in gemini_sim.requests if r.path.startswith("/v1beta/models?")]
        assert len(pages) == 3  # five models (aqa not listed: it neither generates nor embeds)
        assert pages[0].path == "/v1beta/models?pageSize=2"
        assert pages[1].path.startswith("/v1beta/models?pageSize=2&pageToken=")
        assert all(r.headers["x-goog-api-key"] == SERVER_KEY for r in pages)
        # A listing that never ends is read a few pages deep, not forever.
        for n in range(10):
            gemini_sim.add_model(f"gemini-extra-{n}")
        provider.page_size = 1
        before = len(gemini_sim.requests)
        # Five pages of one: the embedder is listed (it embeds), aqa is not.
        assert await provider.list_models({"api_key": SERVER_KEY}) == [
            "gemini-1.5-pro",
            "gemini-2.0-flash",
            "gemini-2.5-flash",
            "text-embedding-004",
        ]
        assert len(gemini_sim.requests) - before == 5
        gemini_sim.valid_keys = {"another-key"}
        with pytest.raises(UpstreamError, match="API key not valid"):
            await provider.list_models({"api_key": SERVER_KEY})


@asynccontextmanager
async def mock_provider(answer: Callable[[], web.Response]) -> AsyncIterator[GoogleProvider]:
    async with canned(answer) as url, upstream() as http:
        yield GoogleProvider("google", http, url)


CALL = ProviderCall("gemini-2.0-flash", [Message("user", "hi")])


async def test_blocked_prompts_are_invalid_parameter() -> None:
    answers: list[dict[str, Any]] = [
        {"promptFeedback": {"blockReason": "SAFETY"}},
        {"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "SAFETY"}]},
    ]
    async with mock_provider(lambda: web.json_response(answers.pop(0))) as provider:
        with pytest.raises(InvalidParameter, match=r"google \(gemini-2.0-flash\) blocked"):
            await provider.complete(CALL, {"api_key": SERVER_KEY})
        with pytest.raises(InvalidParameter, match="SAFETY"):
            await provider.complete(CALL, {"api_key": SERVER_KEY})


async def test_stream_details_the_simulator_does_not_send() -> None:
    frames = [
        {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]},
        {"usageMetadata": {"promptTokenCount": 1}},  # a frame without candidates
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": "thinking", "thought": True}, {"text": "lo"}]},
                    "finishReason": "RECITATION",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 1,
                "candidatesTokenCount": 2,
                "thoughtsTokenCount": 3,
            },
        },
    ]
    body = "".join(f"data: {json.dumps(f)}\r\n\r\n" for f in frames)
    async with mock_provider(
        lambda: web.Response(text=body, content_type="text/event-stream")
    ) as provider:
        items = [item async for item in provider.stream(CALL, {"oauth_token": "ya29.abcdefgh"})]
    assert items == [
        Delta("Hel"),
        ReasoningDelta("thinking"),  # a thought summary is reasoning, not answer text
        Delta("lo"),
        StreamEnd("stop", Usage(1, 5)),
    ]


async def test_errors_inside_a_stream_and_retry_info() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    body = f"data: {json.dumps(error)}\n\n"
    async with mock_provider(lambda: web.Response(text=body)) as provider:
        with pytest.raises(BackendUnavailable, match="overloaded"):
            async for _ in provider.stream(CALL, {"api_key": SERVER_KEY}):
                pass
    # Google often gives the wait only as a RetryInfo detail.
    quota = {
        "error": {
            "code": 429,
            "message": "Quota exceeded.",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}],
        }
    }
    raw = json.dumps(quota).encode()
    limited = google.from_status("google", "m", 429, {}, raw)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 12
    unknown = google.from_status("google", "m", 404, {}, b"<html>404</html>")
    assert isinstance(unknown, ModelNotFound)
