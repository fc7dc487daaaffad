"""The Anthropic simulator must satisfy the official `anthropic` SDK, sync and async, offline."""

from __future__ import annotations

import base64
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from tests.fixtures.anthropic_sim import AnthropicSim, anthropic_sim, tokenize  # noqa: F401

MODEL = "claude-3-5-haiku-latest"
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
RAW_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def tiny_png() -> bytes:
    """A valid 1x1 RGBA PNG, so the simulator's media-type sniffing accepts it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    idat, end = chunk(b"IDAT", pixels), chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + end


PNG_B64 = base64.b64encode(tiny_png()).decode()


@pytest.fixture
def sim(anthropic_sim: AnthropicSim) -> AnthropicSim:  # noqa: F811
    return anthropic_sim


@pytest.fixture
def client(sim: AnthropicSim) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="sk-test", base_url=sim.url, max_retries=0) as c:
        yield c


def text(message: anthropic.types.Message) -> str:
    """The reply text; narrows the SDK's content-block union for type checkers."""
    block = message.content[0]
    assert block.type == "text"
    return block.text


def ask(client: anthropic.Anthropic, **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 32, "messages": HELLO, **kwargs}
    message: anthropic.types.Message = client.messages.create(**params)
    return message


# -- messages: non-streaming --------------------------------------------------------------------
def test_create_text_usage_and_wire(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    # This SDK no longer has temperature/top_p/top_k arguments; the API still takes the fields.
    sampling = {"temperature": 0.2, "top_p": 0.9, "top_k": 5}
    msg = ask(client, max_tokens=64, metadata={"user_id": "u-1"}, extra_body=sampling)
    assert (msg.type, msg.role, msg.model) == ("message", "assistant", MODEL)
    assert msg.id.startswith("msg_01")
    assert len(msg.id) == 28
    assert [b.type for b in msg.content] == ["text"]
    assert text(msg) == "Echo: hello there"
    assert (msg.stop_reason, msg.stop_sequence) == ("end_turn", None)
    # 2 words + 3 per message in; "Echo: ", "hello ", "there" out.
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (5, 3)

    req = sim.requests[-1]
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.headers["authorization"] == "Bearer sk-test"  # how SDK 2.x sends an api_key
    assert req.headers["anthropic-version"]
    assert req.body["max_tokens"] == 64
    assert req.body["metadata"] == {"user_id": "u-1"}
    assert {k: req.body[k] for k in sampling} == sampling

    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=8, messages=HELLO)
    assert raw.headers["request-id"].startswith("req_01")
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "50"


def test_set_reply_per_model_and_both_auth_headers(sim: AnthropicSim) -> None:
    sim.set_reply("claude-sonnet-4-6", "Fixed answer.")
    sim.set_reply("claude-opus-4-7", lambda body: f"{len(body['messages'])} turns")
    with anthropic.Anthropic(auth_token="tok", base_url=sim.url, max_retries=0) as c:
        texts = [text(ask(c, model=m)) for m in ("claude-sonnet-4-6", "claude-opus-4-7")]
    assert texts == ["Fixed answer.", "1 turns"]
    assert sim.requests[-1].headers["authorization"] == "Bearer tok"
    # Older clients and curl send `x-api-key`.
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO}
    r = httpx.post(f"{sim.url}/v1/messages", json=body, headers=RAW_HEADERS)
    assert r.json()["content"] == [{"type": "text", "text": "Echo: hello there"}]
    sim.set_reply("claude-sonnet-4-6", None)
    with anthropic.Anthropic(api_key="k", base_url=sim.url, max_retries=0) as c:
        assert text(ask(c, model="claude-sonnet-4-6")) == "Echo: hello there"


def test_system_prompt_string_and_blocks(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    a = ask(client, system="Be brief.")
    b = ask(client, system=[{"type": "text", "text": "Be"}, {"type": "text", "text": "kind."}])
    assert text(a) == "[system] Echo: hello there"
    assert text(b) == "[system] Echo: hello there"
    assert sim.systems == ["Be brief.", "Be kind."]
    assert a.usage.input_tokens == 2 + 5  # system words count too
    # SDK 2.x types also admit a `system` role inside `messages`: it reaches the model as such.
    c = ask(client, messages=[{"role": "system", "content": "Be calm."}, *HELLO])
    assert text(c) == "[system] Echo: hello there"
    assert sim.systems[-1] == "Be calm."


def test_image_blocks_arrive(client: anthropic.Anthropic) -> None:
    content: list[Any] = [
        {"type": "text", "text": "what is"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "this?"},
    ]
    msg = ask(client, messages=[{"role": "user", "content": content}])
    assert text(msg) == "Echo: what is this? [2 images]"
    assert msg.usage.input_tokens == 3 + 3 + 2 * 100

    # The real API checks the bytes against the declared media type.
    bad = {"type": "base64", "media_type": "image/jpeg", "data": PNG_B64}
    with pytest.raises(anthropic.BadRequestError, match="media type"):
        ask(client, messages=[{"role": "user", "content": [{"type": "image", "source": bad}]}])


def test_max_tokens_and_stop_sequences(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.set_reply(MODEL, "one two three. END four five")
    cut = ask(client, max_tokens=2)
    assert (text(cut), cut.stop_reason, cut.stop_sequence) == (
        "one two ",
        "max_tokens",
        None,
    )
    assert cut.usage.output_tokens == 2

    stop = ask(client, max_tokens=50, stop_sequences=["five", "END"])
    assert (text(stop), stop.stop_reason) == ("one two three. ", "stop_sequence")
    assert stop.stop_sequence == "END"
    assert stop.usage.output_tokens == 3

    # max_tokens is reached before the stop sequence would be generated.
    early = ask(client, max_tokens=1, stop_sequences=["END"])
    assert (text(early), early.stop_reason) == ("one ", "max_tokens")


def test_count_tokens(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=HELLO, system="Be brief."
    )
    assert raw.parse().input_tokens == 7  # the same count that create() reports
    assert raw.headers["request-id"].startswith("req_01")
    assert sim.systems == []  # only generations record the system prompt


# -- messages: streaming ------------------------------------------------------------------------
def test_stream_helper_text_and_final_usage(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "a b c d"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Echo: ", "a ", "b ", "c ", "d"]
    assert text(final) == "Echo: a b c d"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 5)


def test_stream_raw_event_sequence(client: anthropic.Anthropic) -> None:
    events = list(
        client.messages.create(
            model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "a b c"}], stream=True
        )
    )
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.content == []
    assert start.message.stop_reason is None
    assert start.message.usage.input_tokens == 6
    assert delta.type == "message_delta"
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("max_tokens", 2)
    texts = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert texts == ["Echo: ", "a "]


def test_stream_wire_format_has_ping_and_sse_lines(sim: AnthropicSim) -> None:
    # The SDK hides `ping`; read the bytes to pin the frame format and headers themselves.
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{sim.url}/v1/messages", json=body, headers=RAW_HEADERS) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked"
        text = r.read().decode()
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert text.count("data: ") == len(names)
    assert text.endswith("\n\n")


async def test_async_client_create_and_stream(sim: AnthropicSim) -> None:
    async with anthropic.AsyncAnthropic(api_key="k", base_url=sim.url, max_retries=0) as c:
        msg = await c.messages.create(model=MODEL, max_tokens=16, messages=HELLO)
        async with c.messages.stream(model=MODEL, max_tokens=16, messages=HELLO) as stream:
            pieces = [p async for p in stream.text_stream]
            final = await stream.get_final_message()
        models = [m.id async for m in c.models.list()]
    assert text(msg) == "Echo: hello there"
    assert pieces == tokenize("Echo: hello there")
    assert final.usage.output_tokens == 3
    assert models == list(sim.models)


# -- models -------------------------------------------------------------------------------------
def test_models_list_pages_and_retrieve() -> None:
    ids = ["claude-3-5-haiku-latest", "claude-haiku-4-20250514", "claude-opus-4-7"]
    with (
        AnthropicSim(models=ids) as sim,
        anthropic.Anthropic(api_key="k", base_url=sim.url, max_retries=0) as c,
    ):
        page = c.models.list()
        assert [m.id for m in page.data] == ids
        assert page.has_more is False
        assert (page.first_id, page.last_id) == (ids[0], ids[-1])
        first = page.data[0]
        assert (first.type, first.display_name) == ("model", "Claude 3.5 Haiku Latest")
        assert first.created_at > page.data[1].created_at  # newest first, as the real API
        # limit=1 forces the SDK to follow after_id cursors across three pages.
        assert [m.id for m in c.models.list(limit=1)] == ids
        assert sum(r.path.startswith("/v1/models?") for r in sim.requests) == 3
        assert [m.id for m in c.models.list(limit=2, before_id=ids[2]).data] == ids[:2]
        assert c.models.retrieve(ids[1]).display_name == "Claude Haiku 4 20250514"
        with pytest.raises(anthropic.NotFoundError):
            c.models.retrieve("claude-nope")


# -- errors -------------------------------------------------------------------------------------
def test_authentication_error(sim: AnthropicSim) -> None:
    sim.valid_keys = {"good"}
    with (
        anthropic.Anthropic(api_key="bad", base_url=sim.url, max_retries=0) as c,
        pytest.raises(anthropic.AuthenticationError) as err,
    ):
        ask(c)
    assert err.value.status_code == 401
    assert err.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": err.value.request_id,
    }
    with anthropic.Anthropic(api_key="good", base_url=sim.url, max_retries=0) as c:
        assert c.models.list().data
    # No key at all (the SDK refuses to send that, so go around it).
    r = httpx.get(f"{sim.url}/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_request_validation_errors(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        ask(client, model="claude-nope")
    assert (nf.value.type, nf.value.api_message) == ("not_found_error", "model: claude-nope")

    # The SDK cannot omit max_tokens or anthropic-version; raw HTTP can.
    body = {"model": MODEL, "messages": HELLO}
    r = httpx.post(f"{sim.url}/v1/messages", json=body, headers=RAW_HEADERS)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    no_version = httpx.post(f"{sim.url}/v1/messages", json={}, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert "anthropic-version" in no_version.text

    bad_requests: list[dict[str, Any]] = [
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": []},
        {"extra_body": {"temperature": 1.5}},
        {"stop_sequences": [""]},
        {"max_tokens": 0},
    ]
    for bad in bad_requests:
        with pytest.raises(anthropic.BadRequestError):
            ask(client, **bad)
    with pytest.raises(anthropic.BadRequestError, match="Extra inputs are not permitted"):
        ask(client, extra_body={"n": 2})


def test_rate_limit_retry_after_visible(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.fail_next(status=429, retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as err:
        ask(client)
    assert err.value.type == "rate_limit_error"
    headers = err.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert "anthropic-ratelimit-tokens-limit" in headers
    assert "anthropic-ratelimit-input-tokens-reset" in headers
    # Once the failures are spent the next call succeeds.
    assert ask(client).content


def test_sdk_retries_honour_retry_after(sim: AnthropicSim) -> None:
    sim.fail_next(2, status=429, retry_after=0.01)
    with anthropic.Anthropic(api_key="k", base_url=sim.url, max_retries=2) as c:
        assert text(ask(c)) == "Echo: hello there"
    assert [r.headers["x-stainless-retry-count"] for r in sim.requests] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("status", "exc", "kind"),
    [
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
def test_status_errors_map_to_sdk_classes(
    sim: AnthropicSim,
    client: anthropic.Anthropic,
    status: int,
    exc: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    sim.fail_next(status=status)
    with pytest.raises(exc) as err:
        ask(client)
    assert (err.value.status_code, err.value.type) == (status, kind)
    if status == 529:
        assert isinstance(err.value, anthropic.InternalServerError)  # retried like any 5xx


def test_timeout_with_delay(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.delay_s = 0.5
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.1).messages.create(model=MODEL, max_tokens=8, messages=HELLO)
    sim.delay_s = 0.0
    assert ask(client).content


def test_down_is_a_connection_error(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.down = True
    with pytest.raises(anthropic.APIConnectionError) as err:
        ask(client)
    assert not isinstance(err.value, anthropic.APITimeoutError)
    sim.down = False
    assert client.models.list().data


# -- failures mid-stream ------------------------------------------------------------------------
def test_broken_stream_raises_during_iteration(
    sim: AnthropicSim, client: anthropic.Anthropic
) -> None:
    sim.break_stream_after(2)
    pieces: list[str] = []
    words: list[Any] = [{"role": "user", "content": "a b c d e"}]
    # A cut body is an error while iterating, whatever the SDK release calls it: anthropic
    # 2.17 wraps it in APIConnectionError, earlier releases let httpx2's error through.
    with (
        pytest.raises(
            (anthropic.APIConnectionError, httpx2.TransportError), match="incomplete chunked read"
        ),
        client.messages.stream(model=MODEL, max_tokens=64, messages=words) as stream,
    ):
        pieces.extend(stream.text_stream)
    assert pieces == ["Echo: ", "a "]
    # Only the next stream was armed.
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        assert stream.get_final_text() == "Echo: hello there"


def test_error_event_mid_stream_raises(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.error_event_next(after_deltas=1)
    pieces: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as err,
        client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream,
    ):
        pieces.extend(stream.text_stream)
    assert pieces == ["Echo: "]
    # The HTTP status was already 200; the error type comes from the event's body.
    assert (err.value.type, err.value.api_message) == ("overloaded_error", "Overloaded")


def test_garbage_raises(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.garbage_next(2)
    with pytest.raises(ValueError, match=r"line 1"):  # json.JSONDecodeError
        ask(client)
    with pytest.raises(ValueError, match=r"line 1"):
        list(client.messages.create(model=MODEL, max_tokens=8, messages=HELLO, stream=True))
    assert ask(client).content


def test_client_going_away_mid_stream_is_counted(
    sim: AnthropicSim, client: anthropic.Anthropic
) -> None:
    sim.token_delay_s = 0.01
    sim.set_reply(MODEL, "word " * 200)
    with client.messages.stream(model=MODEL, max_tokens=500, messages=HELLO) as stream:
        first = next(iter(stream.text_stream))
    assert first == "word "
    assert sim.wait_disconnects(1, timeout=5)


# -- concurrency --------------------------------------------------------------------------------
def test_two_simulators_at_once() -> None:
    with AnthropicSim(models=["m-a"]) as a, AnthropicSim(models=["m-b"]) as b:
        assert a.url != b.url
        a.set_reply("m-a", "from a")
        b.set_reply("m-b", "from b")
        with (
            anthropic.Anthropic(api_key="k", base_url=a.url, max_retries=0) as ca,
            anthropic.Anthropic(api_key="k", base_url=b.url, max_retries=0) as cb,
        ):
            assert text(ask(ca, model="m-a")) == "from a"
            assert text(ask(cb, model="m-b")) == "from b"
            with pytest.raises(anthropic.NotFoundError):
                ask(ca, model="m-b")
        assert (len(a.requests), len(b.requests)) == (2, 1)


def test_concurrent_requests_and_knobs_from_threads(sim: AnthropicSim) -> None:
    sim.fail_next(3, status=529)
    barrier = threading.Barrier(8)

    def call(i: int) -> str:
        with anthropic.Anthropic(api_key="k", base_url=sim.url, max_retries=0) as c:
            barrier.wait()
            try:
                return text(ask(c, messages=[{"role": "user", "content": f"n{i}"}]))
            except anthropic.OverloadedError:
                return "overloaded"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert results.count("overloaded") == 3
    # Each caller got its own reply, whichever three hit the armed failures.
    assert all(r in ("overloaded", f"Echo: n{i}") for i, r in enumerate(results))
    assert len(sim.requests) == 8


def test_fixture_points_the_sdk_environment_at_the_sim(sim: AnthropicSim) -> None:
    with anthropic.Anthropic(max_retries=0) as c:  # no key, no base_url: both from the env
        assert ask(c).content
    assert sim.requests[-1].headers["authorization"] == "Bearer sk-ant-sim-test-key"
