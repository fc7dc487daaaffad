"""The Gemini simulator must satisfy the official google-genai SDK, end to end and offline."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import aiohttp
import httpx
import httpx2
import pytest

from tests.fixtures.gemini_sim import GeminiSim, gemini_sim  # noqa: F401

# google-genai is a test-only dependency: without it these tests skip instead of erroring.
genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

MODEL = "gemini-2.0-flash"
KEY = "test-key"
# The SDK's default backend is httpx2 (httpx when GOOGLE_GENAI_HTTP_CLIENT=httpx): accept either.
# The SDK's async client runs on aiohttp when it is installed (the gateway installs it).
TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError, aiohttp.ClientError)
TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def make_client(sim: GeminiSim, *, key: str = KEY, **options: Any) -> Any:
    """A client bound to the simulator; SDK retries stay off unless a test asks for them, so a
    single injected failure surfaces as one exception."""
    options.setdefault("retry_options", types.HttpRetryOptions(attempts=1))
    http_options = types.HttpOptions(base_url=sim.url, api_version="v1beta", **options)
    return genai.Client(api_key=key, http_options=http_options)


@pytest.fixture
def sim(gemini_sim: GeminiSim) -> GeminiSim:  # noqa: F811
    return gemini_sim


def drain(chunks: Iterator[Any], into: list[str] | None = None) -> None:
    """Consume a stream, keeping the text of each chunk that arrived before any error."""
    for chunk in chunks:
        if into is not None:
            into.append(chunk.text)


async def adrain(pending: Awaitable[AsyncIterator[Any]]) -> None:
    async for _ in await pending:
        pass


def generate(client: Any, *, stream: bool) -> None:
    if stream:
        drain(client.models.generate_content_stream(model=MODEL, contents="hi"))
    else:
        client.models.generate_content(model=MODEL, contents="hi")


@pytest.fixture
def client(sim: GeminiSim) -> Iterator[Any]:
    c = make_client(sim)
    yield c
    c.close()


@pytest.fixture
async def aclient(sim: GeminiSim) -> AsyncIterator[Any]:
    c = make_client(sim)
    yield c.aio
    await c.aio.aclose()
    c.close()


# -- generation -------------------------------------------------------------------------------
def test_generate_content_text_finish_reason_and_usage(sim: GeminiSim, client: Any) -> None:
    r = client.models.generate_content(model=MODEL, contents="hello brave world")
    assert r.text == "Echo: hello brave world"
    (candidate,) = r.candidates
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"
    assert candidate.index == 0
    usage = r.usage_metadata
    # Prompt: 3 words; reply tokens: "Echo: ", "hello ", "brave ", "world".
    assert (usage.prompt_token_count, usage.candidates_token_count) == (3, 4)
    assert usage.total_token_count == 7
    assert usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert r.model_version == MODEL
    assert r.response_id

    (req,) = sim.requests
    assert (req.method, req.path) == ("POST", f"/v1beta/models/{MODEL}:generateContent")
    assert req.headers["x-goog-api-key"] == KEY  # the SDK authenticates by header, not ?key=
    assert req.body["contents"] == [{"parts": [{"text": "hello brave world"}], "role": "user"}]


def test_generation_config_arrives(sim: GeminiSim, client: Any) -> None:
    config = types.GenerateContentConfig(
        temperature=0.3, top_p=0.9, top_k=5, max_output_tokens=50, seed=42, candidate_count=1
    )
    client.models.generate_content(model=MODEL, contents="hi", config=config)
    sent = sim.requests[-1].body["generationConfig"]
    assert sent["temperature"] == 0.3
    assert (sent["topP"], sent["topK"], sent["maxOutputTokens"], sent["seed"]) == (0.9, 5, 50, 42)


def test_stream_chunks_in_order_and_join_to_the_non_stream_text(
    sim: GeminiSim, client: Any
) -> None:
    full = client.models.generate_content(model=MODEL, contents="one two three")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="one two three"))

    assert [c.text for c in chunks] == ["Echo: ", "one ", "two ", "three"]
    assert "".join(c.text for c in chunks) == full.text
    *middle, last = chunks
    assert all(c.candidates[0].finish_reason is None for c in middle)
    assert all(c.usage_metadata.candidates_token_count is None for c in middle)
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count == 4
    assert last.usage_metadata.total_token_count == full.usage_metadata.total_token_count
    assert len({c.response_id for c in chunks}) == 1
    assert sim.requests[-1].path.endswith(":streamGenerateContent?alt=sse")


async def test_async_client_generate_and_stream(aclient: Any) -> None:
    r = await aclient.models.generate_content(model=MODEL, contents="async hi")
    assert r.text == "Echo: async hi"
    stream = await aclient.models.generate_content_stream(model=MODEL, contents="async hi")
    texts = [chunk.text async for chunk in stream]
    assert texts == ["Echo: ", "async ", "hi"]


def test_inline_image_and_system_instruction_both_arrive(sim: GeminiSim, client: Any) -> None:
    image = types.Part.from_bytes(data=PNG, mime_type="image/png")
    config = types.GenerateContentConfig(system_instruction="You are terse.")
    r = client.models.generate_content(model=MODEL, contents=["Describe", image], config=config)

    assert r.text == "[system] Echo: Describe [1 images]"
    usage = r.usage_metadata
    assert usage.prompt_token_count == 1 + 3 + 258  # user words, system words, one image
    modalities = {d.modality: d.token_count for d in usage.prompt_tokens_details}
    assert modalities[types.MediaModality.IMAGE] == 258
    body = sim.requests[-1].body
    assert body["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    blob = body["contents"][0]["parts"][1]["inlineData"]
    assert base64.urlsafe_b64decode(blob["data"]) == PNG


def test_chat_echoes_the_last_user_turn(sim: GeminiSim, client: Any) -> None:
    chat = client.chats.create(model=MODEL)
    assert chat.send_message("first").text == "Echo: first"
    assert chat.send_message("second").text == "Echo: second"
    roles = [c["role"] for c in sim.requests[-1].body["contents"]]
    assert roles == ["user", "model", "user"]


def test_max_output_tokens_truncates_with_max_tokens(client: Any) -> None:
    config = types.GenerateContentConfig(max_output_tokens=2)
    r = client.models.generate_content(model=MODEL, contents="a b c d", config=config)
    assert r.text == "Echo: a "
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata.candidates_token_count == 2

    chunks = list(
        client.models.generate_content_stream(model=MODEL, contents="a b c d", config=config)
    )
    assert [c.text for c in chunks] == ["Echo: ", "a "]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_stop_sequence_cuts_the_reply_with_stop(sim: GeminiSim, client: Any) -> None:
    sim.set_reply(MODEL, "alpha beta END gamma")
    config = types.GenerateContentConfig(stop_sequences=["END", "never"])
    r = client.models.generate_content(model=MODEL, contents="x", config=config)
    assert r.text == "alpha beta "
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert sim.requests[-1].body["generationConfig"]["stopSequences"] == ["END", "never"]


def test_json_mime_type_yields_json(sim: GeminiSim, client: Any) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json")
    r = client.models.generate_content(model=MODEL, contents="give json", config=config)
    assert json.loads(r.text) == {"text": "Echo: give json"}

    sim.set_reply(MODEL, '{"answer": 42}')  # already JSON: passed through untouched
    r = client.models.generate_content(model=MODEL, contents="q", config=config)
    assert json.loads(r.text) == {"answer": 42}
    assert sim.requests[-1].body["generationConfig"]["responseMimeType"] == ("application/json")


def test_set_reply_text_callable_and_reset(sim: GeminiSim, client: Any) -> None:
    sim.set_reply(MODEL, "fixed answer")
    assert client.models.generate_content(model=MODEL, contents="x").text == "fixed answer"
    sim.set_reply(MODEL, lambda body: f"{len(body['contents'])} turn(s)")
    assert client.models.generate_content(model=MODEL, contents="x").text == "1 turn(s)"
    sim.set_reply(MODEL, None)
    assert client.models.generate_content(model=MODEL, contents="x").text == "Echo: x"


def test_candidate_count(client: Any) -> None:
    config = types.GenerateContentConfig(candidate_count=2)
    r = client.models.generate_content(model=MODEL, contents="hi", config=config)
    assert [c.index for c in r.candidates] == [0, 1]
    assert r.usage_metadata.candidates_token_count == 4


def test_invalid_generation_config_is_invalid_argument(client: Any) -> None:
    config = types.GenerateContentConfig(temperature=3.0)
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model=MODEL, contents="hi", config=config)
    assert (exc.value.code, exc.value.status) == (400, "INVALID_ARGUMENT")
    assert "temperature" in exc.value.message


def test_crlf_sse_framing(sim: GeminiSim, client: Any) -> None:
    sim.sse_newline = "\r\n"
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="crlf ok"))
    assert "".join(c.text for c in chunks) == "Echo: crlf ok"


# -- models -----------------------------------------------------------------------------------
def test_models_list_get_and_count_tokens(sim: GeminiSim, client: Any) -> None:
    listed = list(client.models.list())
    assert [m.name for m in listed] == ["models/gemini-2.0-flash", "models/gemini-2.5-flash"]
    assert listed[0].display_name == "Gemini 2.0 Flash"
    assert "generateContent" in listed[0].supported_actions
    assert listed[0].input_token_limit == 1_048_576

    # One model a page: the SDK pager follows nextPageToken to the end.
    paged = list(client.models.list(config=types.ListModelsConfig(page_size=1)))
    assert [m.name for m in paged] == [m.name for m in listed]
    assert "pageToken=" in sim.requests[-1].path

    assert client.models.get(model=MODEL).output_token_limit == 8192
    assert client.models.count_tokens(model=MODEL, contents="three words here").total_tokens == 3


# -- errors -----------------------------------------------------------------------------------
def test_invalid_key_is_400_invalid_argument(sim: GeminiSim) -> None:
    sim.valid_keys = {"the-real-key"}
    with make_client(sim, key="wrong") as c:
        with pytest.raises(errors.ClientError) as exc:
            c.models.generate_content(model=MODEL, contents="hi")
        assert (exc.value.code, exc.value.status) == (400, "INVALID_ARGUMENT")
        assert exc.value.message == "API key not valid. Please pass a valid API key."
        reasons = [d.get("reason") for d in exc.value.details["error"]["details"]]
        assert "API_KEY_INVALID" in reasons
    with make_client(sim, key="the-real-key") as c:
        assert c.models.generate_content(model=MODEL, contents="hi").text == "Echo: hi"


def test_denied_key_is_403_permission_denied(sim: GeminiSim, client: Any) -> None:
    sim.denied_keys.add(KEY)
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model=MODEL, contents="hi")
    assert (exc.value.code, exc.value.status) == (403, "PERMISSION_DENIED")


def test_unknown_model_is_404_not_found(client: Any) -> None:
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="gemini-0.1-nope", contents="hi")
    assert (exc.value.code, exc.value.status) == (404, "NOT_FOUND")
    assert "models/gemini-0.1-nope is not found" in exc.value.message
    with pytest.raises(errors.ClientError, match="NOT_FOUND"):
        client.models.get(model="gemini-0.1-nope")


@pytest.mark.parametrize(
    ("status", "kind", "name"),
    [
        (401, errors.ClientError, "UNAUTHENTICATED"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_injected_failures_surface_as_sdk_errors(
    sim: GeminiSim, client: Any, status: int, kind: type[Exception], name: str, stream: bool
) -> None:
    sim.fail_next(status=status)
    with pytest.raises(kind) as exc:
        generate(client, stream=stream)
    assert (exc.value.code, exc.value.status) == (status, name)
    # One failure only: the next request succeeds.
    assert client.models.generate_content(model=MODEL, contents="hi").text == "Echo: hi"


def test_429_carries_retry_after_and_retry_info(sim: GeminiSim, client: Any) -> None:
    sim.fail_next(status=429)
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model=MODEL, contents="hi")
    assert exc.value.response.headers["retry-after"] == "7"
    details = exc.value.details["error"]["details"]
    retry = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]


def test_down_answers_503_until_back(sim: GeminiSim, client: Any) -> None:
    sim.down = True
    with pytest.raises(errors.ServerError, match="UNAVAILABLE"):
        list(client.models.list())
    sim.down = False
    assert len(list(client.models.list())) == 2


def test_sdk_retries_get_through_transient_failures(sim: GeminiSim) -> None:
    sim.fail_next(2, status=503)
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.01, jitter=0)
    with make_client(sim, retry_options=retry) as c:
        assert c.models.generate_content(model=MODEL, contents="hi").text == "Echo: hi"
    assert len(sim.requests) == 3


async def test_async_errors(sim: GeminiSim, aclient: Any) -> None:
    sim.fail_next(status=429)
    with pytest.raises(errors.ClientError) as exc:
        await aclient.models.generate_content(model=MODEL, contents="hi")
    assert exc.value.code == 429
    sim.fail_next(status=500)
    with pytest.raises(errors.ServerError):
        await adrain(aclient.models.generate_content_stream(model=MODEL, contents="hi"))


# -- transport faults ---------------------------------------------------------------------------
def test_client_timeout_with_a_slow_server(sim: GeminiSim) -> None:
    sim.delay_s = 2.0
    with make_client(sim, timeout=200) as c:  # HttpOptions.timeout is in milliseconds
        started = time.monotonic()
        with pytest.raises(TIMEOUTS):
            c.models.generate_content(model=MODEL, contents="hi")
        assert time.monotonic() - started < 1.5
    assert sim.requests[-1].headers["x-server-timeout"] == "1"


@pytest.mark.parametrize("frames", [0, 2])
def test_broken_stream_raises(sim: GeminiSim, client: Any, frames: int) -> None:
    sim.break_stream_after(frames)
    received: list[str] = []
    with pytest.raises(TRANSPORT_ERRORS):
        drain(client.models.generate_content_stream(model=MODEL, contents="a b c d"), received)
    assert received == ["Echo: ", "a "][:frames]
    # One break only: the next stream is whole.
    chunks = client.models.generate_content_stream(model=MODEL, contents="a b c d")
    assert "".join(c.text for c in chunks) == "Echo: a b c d"


async def test_async_broken_stream_raises(sim: GeminiSim, aclient: Any) -> None:
    sim.break_stream_after(1)
    with pytest.raises(TRANSPORT_ERRORS):
        await adrain(aclient.models.generate_content_stream(model=MODEL, contents="a b"))


def test_garbage_raises(sim: GeminiSim, client: Any) -> None:
    sim.garbage_next()
    with pytest.raises(ValueError, match="Expecting value"):  # the SDK's own json.loads
        client.models.generate_content(model=MODEL, contents="hi")
    sim.garbage_next()
    with pytest.raises(errors.UnknownApiResponseError):
        list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert client.models.generate_content(model=MODEL, contents="hi").text == "Echo: hi"


def test_client_going_away_mid_stream_is_counted(sim: GeminiSim) -> None:
    sim.set_reply(MODEL, " ".join(f"w{i}" for i in range(200)))
    sim.token_delay_s = 0.02
    c = make_client(sim)
    for i, _ in enumerate(c.models.generate_content_stream(model=MODEL, contents="hi")):
        if i == 2:
            break
    c.close()  # drops the pooled connection the abandoned stream was on
    assert sim.wait_idle(5)
    assert sim.disconnects == 1


# -- raw HTTP: what the SDK never sends ---------------------------------------------------------
def test_raw_http_snake_case_query_key_and_missing_key(sim: GeminiSim) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "raw one two"}]}],
        "system_instruction": {"parts": [{"text": "sys"}]},
        "generation_config": {"max_output_tokens": 2, "stop_sequences": ["zz"]},
    }
    base = f"{sim.url}/v1beta/models/{MODEL}"
    with httpx.Client() as http:
        r = http.post(f"{base}:generateContent", params={"key": KEY}, json=body)
        assert r.status_code == 200
        candidate = r.json()["candidates"][0]
        assert candidate["content"]["parts"][0]["text"] == "[system] Echo: "
        assert candidate["finishReason"] == "MAX_TOKENS"

        # Without alt=sse the stream is a single JSON array of the same responses.
        r = http.post(f"{base}:streamGenerateContent", params={"key": KEY}, json=body)
        assert [f["candidates"][0]["content"]["parts"][0]["text"] for f in r.json()] == [
            "[system] ",
            "Echo: ",
        ]

        r = http.post(f"{base}:generateContent", json=body)
        assert r.status_code == 403
        assert r.json()["error"]["status"] == "PERMISSION_DENIED"

        r = http.get(f"{sim.url}/v1beta/nothing-here", params={"key": KEY})
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")

        r = http.post(f"{base}:generateContent", params={"key": KEY}, json={"contents": []})
        assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_fixture_env_points_a_bare_client_at_the_sim(sim: GeminiSim) -> None:
    with genai.Client(api_key=KEY) as c:
        assert c.models.generate_content(model=MODEL, contents="env").text == "Echo: env"
    assert sim.requests[-1].path.startswith("/v1beta/")


def test_two_simulators_at_once() -> None:
    with GeminiSim(models=["gemini-a"]) as one, GeminiSim(models=["gemini-b"]) as two:
        one.set_reply("gemini-a", "from one")
        with make_client(one) as c1, make_client(two) as c2:
            assert c1.models.generate_content(model="gemini-a", contents="x").text == "from one"
            assert c2.models.generate_content(model="gemini-b", contents="y").text == "Echo: y"
            with pytest.raises(errors.ClientError, match="NOT_FOUND"):
                c2.models.generate_content(model="gemini-a", contents="x")
        assert one.url != two.url
        assert (len(one.requests), len(two.requests)) == (1, 2)
        assert not one.errors
        assert not two.errors
