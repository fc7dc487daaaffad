"""The OpenAI simulator must satisfy the official `openai` SDK, unchanged, end to end and offline.

Every check goes through `OpenAI`/`AsyncOpenAI` with `base_url=sim.base_url` and no retries, so
what passes here is what a gateway built on that SDK (or on plain HTTP) will see from upstream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest

from tests.fixtures.openai_sim import (
    IMAGE_TOKENS,
    PNG_SIGNATURE,
    OpenAISim,
    count_prompt_tokens,
    make_openai_sim,  # noqa: F401
    make_png,
    openai_sim,  # noqa: F401
    tokenize,
)

# Not a project dependency yet: without it the file is skipped, not failed.
pytest.importorskip("openai", reason="the simulator is checked against the official SDK")
import openai
from openai import AsyncOpenAI, OpenAI

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

MODEL = "gpt-4o-mini"
KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def client(openai_sim: OpenAISim) -> Iterator[OpenAI]:  # noqa: F811
    with OpenAI(api_key=KEY, base_url=openai_sim.base_url, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(openai_sim: OpenAISim) -> AsyncIterator[AsyncOpenAI]:  # noqa: F811
    async with AsyncOpenAI(api_key=KEY, base_url=openai_sim.base_url, max_retries=0) as c:
        yield c


def user(content: Any) -> list[ChatCompletionMessageParam]:
    return [cast("ChatCompletionMessageParam", {"role": "user", "content": content})]


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


# -- chat completions -------------------------------------------------------------------------
def test_chat_completion(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello there world"},
    ]
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, temperature=0.2, top_p=0.9, seed=7, user="u-1"
    )
    out = raw.parse()
    assert out.object == "chat.completion"
    assert out.id.startswith("chatcmpl-")
    assert out.model == MODEL
    assert out.system_fingerprint
    assert len(out.choices) == 1
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello there world"
    assert choice.finish_reason == "stop"
    assert out.usage is not None
    # 3 + 3 words, 4 per message; 4 tokens: "Echo: ", "hello ", "there ", "world"
    assert out.usage.prompt_tokens == 6 + 2 * 4 == count_prompt_tokens(messages)
    assert out.usage.completion_tokens == 4
    assert out.usage.total_tokens == 18
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"]
    assert raw.headers["content-type"] == "application/json"

    method, path, headers, body = openai_sim.requests[-1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["messages"] == messages
    assert body["seed"] == 7


def test_set_reply_per_model(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.set_reply("gpt-4o", "Fixed answer.")
    openai_sim.set_reply(MODEL, lambda body: f"{len(body['messages'])} messages")

    def ask(model: str) -> str | None:
        return (
            client.chat.completions.create(model=model, messages=user("hi"))
            .choices[0]
            .message.content
        )

    assert ask("gpt-4o") == "Fixed answer."
    assert ask(MODEL) == "1 messages"
    openai_sim.set_reply(MODEL, None)
    assert ask(MODEL) == "Echo: hi"


def test_stream_with_usage(client: OpenAI) -> None:
    messages = user("one two three four five")
    plain = client.chat.completions.create(model=MODEL, messages=messages)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = plain.choices[0].message.content
    assert text is not None
    tokens = tokenize(text)
    # role chunk, one chunk per token, finish chunk, usage chunk
    assert len(chunks) == len(tokens) + 3
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    first, *deltas, finish, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert [d.choices[0].delta.content for d in deltas] == tokens
    assert all(d.choices[0].finish_reason is None and d.usage is None for d in deltas)
    assert "".join(d.choices[0].delta.content or "" for d in deltas) == text
    assert finish.choices[0].finish_reason == "stop"
    assert last.choices == []
    assert last.usage == plain.usage


def test_stream_without_usage_and_wire_format(openai_sim: OpenAISim) -> None:  # noqa: F811
    # The raw bytes: what a gateway proxying SSE byte-for-byte relays.
    body = {"model": MODEL, "messages": user("a b"), "stream": True}
    with httpx.stream(
        "POST",
        f"{openai_sim.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["transfer-encoding"] == "chunked"
        raw = resp.read().decode()
    frames = raw.split("\n\n")
    assert frames[-1] == ""
    assert frames[-2] == "data: [DONE]"
    payloads = [json.loads(f.removeprefix("data: ")) for f in frames[:-2]]
    assert all(f.startswith("data: {") for f in frames[:-2])
    # No include_usage: no usage key, no usage chunk.
    assert all("usage" not in p and len(p["choices"]) == 1 for p in payloads)
    assert [p["choices"][0]["delta"].get("content") for p in payloads] == [
        "",
        "Echo: ",
        "a ",
        "b",
        None,
    ]
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


async def test_async_chat_and_stream(aclient: AsyncOpenAI) -> None:
    plain = await aclient.chat.completions.create(model=MODEL, messages=user("async works"))
    assert plain.choices[0].message.content == "Echo: async works"
    stream = await aclient.chat.completions.create(
        model=MODEL,
        messages=user("async works"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage == plain.usage


def test_image_parts(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    png = make_png(4, 4, "input")
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": data_url(png), "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    out = client.chat.completions.create(model=MODEL, messages=user(content))
    assert out.choices[0].message.content == "Echo: What is in these? [2 images]"
    assert out.usage is not None
    assert out.usage.prompt_tokens == 4 + 4 + 2 * IMAGE_TOKENS
    # The image reached upstream byte for byte.
    sent = openai_sim.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(sent.split(",", 1)[1]) == png

    one = (
        client.chat.completions.create(model=MODEL, messages=user([content[1]]))
        .choices[0]
        .message.content
    )
    assert one == "Echo: [1 image]"


def test_bad_image_rejected(client: OpenAI) -> None:
    not_png = "data:image/png;base64," + base64.b64encode(b"plain text").decode()
    part = {"type": "image_url", "image_url": {"url": not_png}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=user([part]))
    assert err.value.code == "invalid_image_format"
    system = cast("ChatCompletionMessageParam", {"role": "system", "content": [part]})
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[system, *user("hi")])
    assert "only allowed for messages with role 'user'" in err.value.message


def test_response_format_json(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    out = client.chat.completions.create(
        model=MODEL, messages=user("answer in json"), response_format={"type": "json_object"}
    )
    content = out.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"reply": "Echo: answer in json"}
    # A configured reply that already is JSON goes out unchanged.
    openai_sim.set_reply(MODEL, '{"ok": true}')
    out = client.chat.completions.create(
        model=MODEL, messages=user("JSON please"), response_format={"type": "json_object"}
    )
    assert out.choices[0].message.content == '{"ok": true}'
    # Like the real API: json_object needs the word "json" somewhere in the messages.
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=user("hi"), response_format={"type": "json_object"}
        )
    assert err.value.param == "messages"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_length(client: OpenAI, field: str) -> None:
    limit: dict[str, Any] = {field: 2}
    out = client.chat.completions.create(model=MODEL, messages=user("a b c d"), **limit)
    assert out.choices[0].message.content == "Echo: a "
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None
    assert out.usage.completion_tokens == 2
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=user("a b c d"), stream=True, **limit)
    )
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["Echo: ", "a "]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequences(client: OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=user("one two three four"), stop=["three", "zzz"]
    )
    assert out.choices[0].message.content == "Echo: one two "
    assert out.choices[0].finish_reason == "stop"
    out = client.chat.completions.create(
        model=MODEL, messages=user("one two three four"), stop="three", max_tokens=2
    )
    assert out.choices[0].finish_reason == "length"  # the limit came before the stop sequence


def test_request_validation(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=user("hi"), n=2)
    assert err.value.param == "n"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=user("hi"), temperature=3)
    assert err.value.code == "decimal_above_max_value"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[])
    assert err.value.code == "empty_array"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=user("hi"), extra_body={"x": 1})
    assert err.value.message.endswith("Unrecognized request argument supplied: x")

    # What the SDK cannot send: plain HTTP.
    auth = {"Authorization": f"Bearer {KEY}"}
    url = f"{openai_sim.base_url}/chat/completions"
    resp = httpx.post(url, json={"messages": user("hi")}, headers=auth)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": {
            "message": "you must provide a model parameter",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    resp = httpx.post(url, json={"model": MODEL}, headers=auth)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "messages"
    assert resp.json()["error"]["code"] == "missing_required_parameter"
    resp = httpx.post(url, content=b"{not json", headers=auth)
    assert resp.status_code == 400
    assert "could not parse the JSON body" in resp.json()["error"]["message"]
    resp = httpx.post(f"{openai_sim.base_url}/nope", json={}, headers=auth)
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "Invalid URL (POST /v1/nope)"


# -- images and models ------------------------------------------------------------------------
def test_images_b64_json(client: OpenAI) -> None:
    out = client.images.generate(
        model="dall-e-2", prompt="a red cube", n=2, size="256x256", response_format="b64_json"
    )
    assert out.data is not None
    assert len(out.data) == 2
    pngs = [base64.b64decode(d.b64_json or "") for d in out.data]
    assert all(png_size(p) == (256, 256) for p in pngs)
    assert pngs[0] != pngs[1]
    # A real, decodable PNG: one filter byte + 3 bytes per pixel per row.
    idat_len = struct.unpack(">I", pngs[0][33:37])[0]
    assert len(zlib.decompress(pngs[0][41 : 41 + idat_len])) == 256 * (1 + 3 * 256)
    again = client.images.generate(
        model="dall-e-2", prompt="a red cube", n=1, size="256x256", response_format="b64_json"
    )
    assert again.data is not None
    assert again.data[0].b64_json == out.data[0].b64_json  # deterministic from the prompt


def test_images_url(client: OpenAI) -> None:
    out = client.images.generate(model="dall-e-3", prompt="a blue sphere", response_format="url")
    assert out.data is not None
    item = out.data[0]
    assert item.revised_prompt == "a blue sphere"
    assert item.url is not None
    resp = httpx.get(item.url)  # no auth, like the real signed URLs
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/png"
    assert png_size(resp.content) == (1024, 1024)
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="dall-e-3", prompt="x", size="256x256")
    assert err.value.param == "size"


def test_models_list(client: OpenAI) -> None:
    sim = OpenAISim(models=["gpt-4o-mini", "my-local"]).start()
    try:
        with OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0) as c:
            models = c.models.list()
            assert [m.id for m in models] == ["gpt-4o-mini", "my-local"]
            assert all(m.object == "model" and m.owned_by and m.created for m in models)
            assert c.models.retrieve("my-local").id == "my-local"
            with pytest.raises(openai.NotFoundError) as err:
                c.models.retrieve("gpt-4o")
            assert err.value.code == "model_not_found"
    finally:
        sim.stop()
    assert not sim.errors


# -- errors -----------------------------------------------------------------------------------
def test_authentication(openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.valid_keys = {KEY}
    wrong = "sk-wrong-key-xyz"
    with (
        OpenAI(api_key=wrong, base_url=openai_sim.base_url, max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError) as err,
    ):
        bad.models.list()
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert err.value.type == "invalid_request_error"
    assert err.value.message.startswith("Error code: 401 - Incorrect API key provided: sk-")
    assert "-xyz." in err.value.message
    assert wrong not in err.value.message  # masked, like the real API
    with OpenAI(api_key=KEY, base_url=openai_sim.base_url, max_retries=0) as good:
        assert good.models.list().data
    resp = httpx.get(f"{openai_sim.base_url}/models")
    assert resp.status_code == 401
    assert resp.json()["error"]["message"].startswith("You didn't provide an API key.")


def test_unknown_model(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-9", messages=user("hi"))
    assert err.value.code == "model_not_found"
    assert "`gpt-9` does not exist" in err.value.message


def test_rate_limited(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.fail_next(status=429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.value.response.headers["x-ratelimit-reset-requests"] == "7s"
    assert err.value.code == "rate_limit_exceeded"
    # Only the next request failed.
    assert client.chat.completions.create(model=MODEL, messages=user("hi")).choices


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(client: OpenAI, openai_sim: OpenAISim, status: int) -> None:  # noqa: F811
    openai_sim.fail_next(2, status=status)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model=MODEL, messages=user("hi"))
        assert err.value.status_code == status
    if status == 502:  # the CDN's HTML page, not an OpenAI error body
        assert isinstance(err.value.body, str)
        assert "502 Bad Gateway" in err.value.body
    else:
        assert err.value.type == "server_error"
    assert client.chat.completions.create(model=MODEL, messages=user("hi")).choices


def test_custom_error_body(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    body = {"error": {"message": "quota", "type": "insufficient_quota", "param": None, "code": "q"}}
    openai_sim.fail_next(status=429, body=body)
    with pytest.raises(openai.RateLimitError) as err:
        client.models.list()
    assert err.value.code == "q"
    assert err.value.response.headers["retry-after"] == "1"


def test_timeout(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.delay_s = 10
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model=MODEL, messages=user("x"))
    assert time.monotonic() - started < 3
    # The simulator noticed the client giving up while it was still "thinking".
    assert openai_sim.wait_for(lambda s: s.disconnects == 1)


async def test_timeout_async(aclient: AsyncOpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.delay_s = 10
    with pytest.raises(openai.APITimeoutError):
        await aclient.with_options(timeout=0.3).models.list()
    openai_sim.delay_s = 0
    assert (await aclient.models.list()).data


def test_broken_stream(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.break_stream_after(2)
    stream = client.chat.completions.create(model=MODEL, messages=user("a b c d e f"), stream=True)
    received = [next(stream).choices[0].delta.content for _ in range(3)]
    assert received == ["", "Echo: ", "a "]
    # No finish chunk, no [DONE]: the cut surfaces as an error, not as a short reply.
    with pytest.raises(openai.APIConnectionError):
        next(stream)
    # The next stream is whole again.
    chunks = list(client.chat.completions.create(model=MODEL, messages=user("a b"), stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_garbage(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    # A 200 whose JSON is cut off: the SDK's own parse fails (json.JSONDecodeError, a ValueError,
    # not an openai.OpenAIError: that is how the real SDK behaves).
    openai_sim.garbage_next()
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model=MODEL, messages=user("hi"))
    openai_sim.garbage_next()
    stream = client.chat.completions.create(model=MODEL, messages=user("hi"), stream=True)
    with pytest.raises(json.JSONDecodeError):
        list(stream)
    # An HTML page with a 200: only strict validation turns it into an SDK error.
    openai_sim.garbage_next(body=b"<html>oops</html>", content_type="text/html")
    with (
        OpenAI(
            api_key=KEY,
            base_url=openai_sim.base_url,
            max_retries=0,
            _strict_response_validation=True,
        ) as strict,
        pytest.raises(openai.APIResponseValidationError),
    ):
        strict.chat.completions.create(model=MODEL, messages=user("hi"))
    assert client.chat.completions.create(model=MODEL, messages=user("hi")).choices


def test_down(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.down = True
    with pytest.raises(openai.APIConnectionError):
        client.models.list()
    assert openai_sim.requests[-1].path == "/v1/models"  # the attempt is still logged
    openai_sim.down = False
    assert client.models.list().data


async def test_client_disconnect_mid_stream(
    aclient: AsyncOpenAI,
    openai_sim: OpenAISim,  # noqa: F811
) -> None:
    openai_sim.token_delay_s = 0.05
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=user(" ".join(["word"] * 50)), stream=True
    )
    received = []
    async for chunk in stream:
        received.append(chunk)
        if len(received) == 3:
            break
    assert openai_sim.active_streams == 1
    await stream.close()
    assert openai_sim.wait_for(lambda s: s.disconnects == 1 and s.active_streams == 0)


def test_token_delay_paces_stream(client: OpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    openai_sim.token_delay_s = 0.03
    started = time.monotonic()
    chunks = list(client.chat.completions.create(model=MODEL, messages=user("a b c"), stream=True))
    # 6 frames (role, 4 tokens, finish) and [DONE]: a pause before each but the first.
    assert len(chunks) == 6
    assert time.monotonic() - started >= 6 * 0.03
    assert openai_sim.disconnects == 0


async def test_concurrent_streams(aclient: AsyncOpenAI, openai_sim: OpenAISim) -> None:  # noqa: F811
    # A long pause holds every stream open after its role chunk; dropping the knob to 0 while
    # they wait releases them all (token_delay_s is followed live).
    openai_sim.token_delay_s = 30

    async def one(i: int) -> str:
        stream = await aclient.chat.completions.create(
            model=MODEL, messages=user(f"stream {i}"), stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    tasks = [asyncio.create_task(one(i)) for i in range(8)]
    seen_all = await asyncio.to_thread(openai_sim.wait_for, lambda s: s.active_streams == 8)
    openai_sim.token_delay_s = 0
    assert seen_all
    assert await asyncio.gather(*tasks) == [f"Echo: stream {i}" for i in range(8)]
    assert openai_sim.wait_for(lambda s: s.active_streams == 0)
    assert openai_sim.disconnects == 0


# -- several upstreams ------------------------------------------------------------------------
def test_two_simulators(make_openai_sim: Callable[..., OpenAISim]) -> None:  # noqa: F811
    primary = make_openai_sim()
    fallback = make_openai_sim(models=["gpt-4o-mini"])
    assert primary.url != fallback.url
    primary.set_reply(MODEL, "from primary")
    fallback.set_reply(MODEL, "from fallback")
    primary.fail_next(status=503)
    answers = []
    with (
        OpenAI(api_key=KEY, base_url=primary.base_url, max_retries=0) as a,
        OpenAI(api_key=KEY, base_url=fallback.base_url, max_retries=0) as b,
    ):
        for c in (a, b):
            try:
                answers.append(c.chat.completions.create(model=MODEL, messages=user("hi")))
                break
            except openai.InternalServerError:
                continue
        assert a.chat.completions.create(model=MODEL, messages=user("x")).choices
    assert [r.choices[0].message.content for r in answers] == ["from fallback"]
    assert len(primary.requests_to("/v1/chat/completions")) == 2
    assert len(fallback.requests_to("/v1/chat/completions")) == 1
