"""Defects third-party clients found on the compatibility surfaces (issue #14), each
driven through HTTP with the vendor's own SDK: the vendor's wire format is the contract."""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pluggably.db import Database, migrate
from pluggably.messages import Message
from pluggably.registry.models import Model, ModelSchema
from pluggably.registry.param_schemas import default_schema
from pluggably.runtimes.prompts import TURN_MARKERS, AnswerFilter, template_prompt, transcript
from tests.conftest import ADMIN_KEY, client_for, running
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.gemini_sim import GeminiSim
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.providers.test_google_provider import google_app
from tests.surfaces.anthropic.test_anthropic_compat import compat_app, named_events, raw_stream
from tests.surfaces.anthropic.test_anthropic_compat import sdk as anthropic_sdk
from tests.surfaces.openai.test_openai_compat import gemma_app

ADMIN = {"X-API-Key": ADMIN_KEY}
GPT = "openai:gpt-4o-mini"
CLAUDE = "claude-3-5-haiku-latest"
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
OPENAI_BASE = "http://testserver/openai/v1"


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_TEXT = _AnyText()


def openai_sdk(app: FastAPI, *, retries: int = 0) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        base_url=OPENAI_BASE,
        api_key=ADMIN_KEY,
        max_retries=retries,
        http_client=httpx.AsyncClient(transport=transport, timeout=60),
    )


def openai_error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


async def drain(stream: Any, seen: list[str]) -> None:
    async for chunk in stream:
        seen += [c.delta.content or "" for c in chunk.choices]


# 1. A stream that fails before its first token answers the error's real status.


async def test_openai_stream_refused_upstream_is_a_real_429_the_sdk_retries(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)

    def calls() -> int:
        return len(openai_sim.requests_to("/v1/chat/completions"))

    async with running(app):
        api = openai_sdk(app, retries=2)
        try:
            openai_sim.fail_next(n=3, status=429)
            with pytest.raises(openai.RateLimitError) as limited:
                await api.chat.completions.create(model=GPT, messages=HELLO, stream=True)
            assert limited.value.status_code == 429
            assert limited.value.response.headers["retry-after"] == "1"
            error = openai_error(limited.value)
            assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
            assert calls() == 3  # the first try and the SDK's two retries

            openai_sim.fail_next(status=429)  # once: the SDK's retry gets the stream
            stream = await api.chat.completions.create(model=GPT, messages=HELLO, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "Echo: hello there"
            assert calls() == 5

            openai_sim.fail_next(status=502)  # legacy completions too, any status
            with pytest.raises(openai.InternalServerError) as failing:
                await api.with_options(max_retries=0).completions.create(
                    model=GPT, prompt="say hi", stream=True
                )
            assert failing.value.status_code == 503
            assert openai_error(failing.value)["code"] == "backend_unavailable"
            assert failing.value.response.headers["retry-after"] == "5"

            # After the first token the 200 has gone out: an error chunk ends the stream.
            openai_sim.set_reply("gpt-4o-mini", "a b c d e f")
            openai_sim.break_stream_after(2)
            broken = await api.chat.completions.create(model=GPT, messages=HELLO, stream=True)
            seen: list[str] = []
            with pytest.raises(openai.APIError) as late:
                await drain(broken, seen)
            assert "".join(seen) == "a b "
            assert isinstance(late.value.body, dict)
            assert late.value.body["code"] == "backend_unavailable"
        finally:
            await api.close()


async def test_anthropic_stream_refused_upstream_says_when_to_retry(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = compat_app(tmp_path, database_url, openai=openai_sim)
    async with running(app), anthropic_sdk(app) as client:
        openai_sim.fail_next(status=429, retry_after=3)
        with pytest.raises(anthropic.RateLimitError) as limited:
            async with client.messages.stream(model=GPT, max_tokens=8, messages=HELLO) as stream:
                await stream.get_final_message()
        assert limited.value.response.headers["retry-after"] == "3"
        assert limited.value.body == {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": ANY_TEXT},
            "request_id": limited.value.response.headers["x-request-id"],
        }


# 3. Answers name the model the caller asked for, as the caller wrote it.


async def test_answers_echo_the_model_id_the_caller_sent(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    anthropic_sim: AnthropicSim,
    make_openai_sim: Callable[..., OpenAISim],
) -> None:
    backup = make_openai_sim(models=["gpt-4o-mini"])
    app = compat_app(
        tmp_path,
        database_url,
        openai=openai_sim,
        claude=anthropic_sim,
        endpoints={"backup": {"base_url": backup.base_url, "api_key": "sk-backup-0001"}},
        fallbacks={"gpt-4o-mini": ["backup:gpt-4o-mini"]},
    )
    async with running(app), client_for(app) as http, anthropic_sdk(app) as claude:
        api = openai_sdk(app)
        try:
            chat = await api.chat.completions.create(model="gpt-4o", messages=HELLO)
            assert chat.model == "gpt-4o"  # not openai:gpt-4o
            stream = await api.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
            assert {chunk.model async for chunk in stream} == {"gpt-4o"}
            legacy = await api.completions.create(model="gpt-4o", prompt="hi")
            assert legacy.model == "gpt-4o"

            # On a fallback the answer names the model that wrote it.
            openai_sim.fail_next(status=503)
            fell = await api.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert fell.model == "backup:gpt-4o-mini"
        finally:
            await api.close()

        message = await claude.messages.create(model=CLAUDE, max_tokens=16, messages=HELLO)
        assert message.model == CLAUDE  # not anthropic:claude-…
        async with claude.messages.stream(model=CLAUDE, max_tokens=16, messages=HELLO) as events:
            starts = [e.message.model async for e in events if e.type == "message_start"]
            final = await events.get_final_message()
        assert (starts, final.model) == ([CLAUDE], CLAUDE)

        native = await http.post(
            "/v1/generate", json={"model": "gpt-4o", "input": {"prompt": "hi"}}, headers=ADMIN
        )
        body = native.json()
        assert body["model"] == "gpt-4o"
        assert body["selection"]["selected_model"] == "openai:gpt-4o"  # what actually ran
        auto = await http.post("/v1/generate", json={"input": {"prompt": "hi"}}, headers=ADMIN)
        assert auto.json()["model"] == auto.json()["selection"]["selected_model"]  # none asked


# 2. More stop sequences than a vendor takes: the gateway holds the rest itself.

MANY_STOPS = [f"<stop{i}>" for i in range(10)]


async def test_openai_sdk_sends_ten_stops_to_a_vendor_that_takes_four(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    openai_sim.set_reply("gpt-4o-mini", "alpha beta <stop8> gamma delta")
    async with running(app):
        api = openai_sdk(app)
        try:
            chat = await api.chat.completions.create(model=GPT, messages=HELLO, stop=MANY_STOPS)
            assert chat.choices[0].message.content == "alpha beta "
            assert chat.choices[0].finish_reason == "stop"
            sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
            assert sent["stop"] == MANY_STOPS[:4]  # OpenAI's limit; the sim enforces it

            stream = await api.chat.completions.create(
                model=GPT,
                messages=HELLO,
                stop=MANY_STOPS,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "alpha beta "
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == 3  # the cut came at the third token

            legacy = await api.completions.create(model=GPT, prompt="x", stop=MANY_STOPS)
            assert legacy.choices[0].text == "alpha beta "

            with pytest.raises(openai.BadRequestError) as too_many:
                await api.chat.completions.create(
                    model=GPT, messages=HELLO, stop=[f"s{i}" for i in range(65)]
                )
            error = openai_error(too_many.value)
            assert error["param"] == "stop"
            assert "'stop'" in error["message"]
            assert "at most 64" in error["message"]
        finally:
            await api.close()


async def test_anthropic_sdk_stop_sequences_beyond_four(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim, openai_sim: OpenAISim
) -> None:
    app = compat_app(tmp_path, database_url, openai=openai_sim, claude=anthropic_sim)
    anthropic_sim.set_reply(CLAUDE, "one two <stop9> three")
    openai_sim.set_reply("gpt-4o-mini", "one two <stop9> three")
    async with running(app), anthropic_sdk(app) as client, client_for(app) as http:
        message = await client.messages.create(
            model=CLAUDE, max_tokens=50, stop_sequences=MANY_STOPS, messages=HELLO
        )
        assert message.content[0].text == "one two "
        assert anthropic_sim.requests[-1].body["stop_sequences"] == MANY_STOPS  # no cap there
        through_openai = await client.messages.create(
            model=GPT, max_tokens=50, stop_sequences=MANY_STOPS, messages=HELLO
        )
        assert through_openai.content[0].text == "one two "

        with pytest.raises(anthropic.BadRequestError) as too_many:
            await client.messages.create(
                model=CLAUDE,
                max_tokens=8,
                messages=HELLO,
                stop_sequences=[f"s{i}" for i in range(65)],
            )
        assert "stop_sequences: at most 64 items are accepted; got 65" in str(too_many.value)

        native = await http.post(
            "/v1/generate",
            json={"model": GPT, "input": {"prompt": "x"}, "parameters": {"stop": ["a"] * 65}},
            headers=ADMIN,
        )
        assert native.status_code == 422
        assert "stop: at most 64 items are accepted" in native.json()["detail"]["message"]
        # A wrong type says what fits, once; a list with a wrong item names the item.
        for stop, said in ((5, "stop: must be a string or an array."), ([1], "stop: [0]: 1 is")):
            body = {"model": GPT, "input": {"prompt": "x"}, "parameters": {"stop": stop}}
            wrong = await http.post("/v1/generate", json=body, headers=ADMIN)
            assert wrong.status_code == 422
            assert said in wrong.json()["detail"]["message"], wrong.text


async def test_gemini_gets_five_stops_and_the_gateway_holds_the_rest(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    gemini_sim.set_reply("gemini-2.0-flash", "red green <stop7> blue")
    async with google_app(tmp_path, database_url, gemini_sim) as (_app, http):
        body = {"model": "google:gemini-2.0-flash", "input": {"prompt": "colours"}}
        answer = await http.post(
            "/v1/generate", json={**body, "parameters": {"stop": MANY_STOPS}}, headers=ADMIN
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"]["text"] == "red green "
        assert answer.json()["finish_reason"] == "stop"
        config = gemini_sim.requests[-1].body["generationConfig"]
        assert config["stopSequences"] == MANY_STOPS[:5]


async def test_models_registered_before_keep_no_four_stop_limit(database_url: str) -> None:
    """A model registered by an earlier release stored the default schema of its day
    (4 stop sequences); the migration brings that stored default up to today's."""
    migration = importlib.import_module(
        "pluggably.db.migrations.versions.0008_stop_sequences_limit"
    )
    assert default_schema("m", "text")["properties"]["stop"] == migration.NEW_STOP
    database = Database(database_url)
    try:
        await migrate.upgrade(database.engine, "0007")
        old = default_schema("m", "text")
        old["properties"]["stop"] = migration.OLD_STOP
        edited = copy.deepcopy(old)
        edited["properties"]["stop"]["anyOf"][1]["maxItems"] = 2  # changed by hand: kept
        async with database.session() as session:
            for name, schema in (("old", old), ("edited", edited)):
                session.add(
                    Model(
                        id=name,
                        name=name,
                        provider="local",
                        modality="text",
                        source_type="local",
                        format="gguf",
                        origin="registered",
                    )
                )
                await session.flush()
                session.add(ModelSchema(model_id=name, version=1, schema=schema))
        await migrate.upgrade(database.engine)
        async with database.session() as session:
            rows = await session.execute(select(ModelSchema.model_id, ModelSchema.schema))
            stops = {model_id: schema["properties"]["stop"] for model_id, schema in rows}
        assert stops == {"old": migration.NEW_STOP, "edited": edited["properties"]["stop"]}
    finally:
        await database.dispose()


# 4. A base model's transcript: the answer ends where the model invents the next turn.

GEMMA = "local/gemma"
TURN = re.compile(r"(^|\n)\s*(User|Assistant|System):")


@pytest.mark.slow
async def test_bundled_model_answers_without_invented_turns(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    # Greedy, this base model goes on with "\nAssistant: …" and "\nUser: …" lines.
    dialogue: Any = [{"role": "user", "content": "Once upon a time"}]
    async with running(app), client_for(app, timeout=60) as http:
        api = openai_sdk(app)
        try:
            chat = await api.chat.completions.create(
                model=GEMMA, messages=dialogue, temperature=0, max_tokens=60
            )
            text = chat.choices[0].message.content or ""
            assert text.strip()
            assert not TURN.search(text), text
            assert text == text.rstrip()  # nothing of the marker, not even its newline
            assert chat.choices[0].finish_reason == "stop"  # at the turn, not at 60 tokens
            assert chat.model == GEMMA

            stream = await api.chat.completions.create(
                model=GEMMA, messages=dialogue, temperature=0, max_tokens=60, stream=True
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            assert "".join(pieces) == text

            # The caller's own stop list is untouched by the runtime's markers: all 64 fit.
            many = [f"never{i}" for i in range(64)]
            native = await http.post(
                "/v1/generate",
                json={
                    "model": GEMMA,
                    "input": {"messages": dialogue},
                    "parameters": {"temperature": 0, "max_tokens": 60, "stop": many},
                },
                headers=ADMIN,
            )
            assert native.status_code == 200, native.text
            assert native.json()["output"]["text"] == text
        finally:
            await api.close()


def test_answer_filter_drops_an_invented_turn_and_the_blank_line_before_it() -> None:
    answer = AnswerFilter(["END"], TURN_MARKERS)
    shown = [answer.feed(piece) for piece in ["Hi", " there.", "\n", "\nUs", "er: more"]]
    assert "".join(shown) == "Hi there."
    assert (answer.stopped, answer.stop_sequence) == (True, None)  # a marker: not reported

    caller = AnswerFilter(["\nUser:", "END"], TURN_MARKERS)  # the caller's own, reported
    assert caller.feed("one\nUser: two") == "one"
    assert caller.stop_sequence == "\nUser:"
    spaced = AnswerFilter(["END"], TURN_MARKERS)
    assert spaced.feed("a \n") + spaced.feed("b END c") == "a \nb "  # kept before the caller's
    assert spaced.stop_sequence == "END"
    ended = AnswerFilter([], TURN_MARKERS)
    assert ended.feed("done.\n\nAnd") + ended.flush() == "done.\n\nAnd"  # no turn: all of it
    cut_short = AnswerFilter([], TURN_MARKERS)  # the token limit came mid-marker
    assert cut_short.feed("done.\n") + cut_short.feed("Us") + cut_short.flush() == "done."


# 5. The Anthropic surface says which stop sequence ended the text.


async def test_anthropic_surface_reports_the_stop_sequence_that_matched(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim, openai_sim: OpenAISim
) -> None:
    app = compat_app(tmp_path, database_url, openai=openai_sim, claude=anthropic_sim)
    anthropic_sim.set_reply(CLAUDE, "one two STOP three")
    openai_sim.set_reply("gpt-4o-mini", "one two <stop8> three")
    stops = ["never", "STOP"]
    async with running(app), anthropic_sdk(app) as client, client_for(app) as http:
        # Anthropic upstream: it says which one; carried through, JSON and stream.
        message = await client.messages.create(
            model=CLAUDE, max_tokens=50, stop_sequences=stops, messages=HELLO
        )
        assert message.content[0].text == "one two "
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
        async with client.messages.stream(
            model=CLAUDE, max_tokens=50, stop_sequences=stops, messages=HELLO
        ) as stream:
            final = await stream.get_final_message()
        assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "STOP")

        # An OpenAI upstream that took the list: the gateway cut at the 9th itself.
        via_openai = await client.messages.create(
            model=GPT, max_tokens=50, stop_sequences=MANY_STOPS, messages=HELLO
        )
        assert (via_openai.stop_reason, via_openai.stop_sequence) == ("stop_sequence", "<stop8>")
        text = await raw_stream(
            http, ADMIN, model=GPT, max_tokens=50, stop_sequences=MANY_STOPS, messages=HELLO
        )
        delta = [data for name, data in named_events(text) if name == "message_delta"]
        assert delta[0]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "<stop8>"}
        # It stopped at one of the 4 it was sent: OpenAI says only "stop".
        openai_sim.set_reply("gpt-4o-mini", "one two <stop1> three")
        told = await client.messages.create(
            model=GPT, max_tokens=50, stop_sequences=MANY_STOPS, messages=HELLO
        )
        assert (told.content[0].text, told.stop_reason, told.stop_sequence) == (
            "one two ",
            "end_turn",
            None,
        )

        # The native answer keeps its finish_reason and names the sequence beside it.
        native = await http.post(
            "/v1/generate",
            json={"model": CLAUDE, "input": {"prompt": "x"}, "parameters": {"stop": stops}},
            headers=ADMIN,
        )
        assert (native.json()["finish_reason"], native.json()["stop_sequence"]) == ("stop", "STOP")


@pytest.mark.slow
async def test_bundled_model_reports_the_stop_sequence_it_hit(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    body: dict[str, Any] = {
        "model": GEMMA,
        "max_tokens": 60,
        "messages": [{"role": "user", "content": "Once upon a time"}],
        "stop_sequences": ["dragon", "little"],
    }
    async with running(app), anthropic_sdk(app) as client, client_for(app, timeout=60) as http:
        message = await client.messages.create(**body, extra_body={"temperature": 0})
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "little")
        assert not message.content[0].text.endswith("little")
        text = await raw_stream(http, ADMIN, **body, temperature=0)
        delta = [data for name, data in named_events(text) if name == "message_delta"]
        assert delta[0]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "little"}
        # Ended by its own turn, not by a caller's sequence: end_turn.
        plain = await client.messages.create(
            **{**body, "stop_sequences": ["dragon"]}, extra_body={"temperature": 0}
        )
        assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)


# 6. An assistant prefill is continued, and the answer holds only the continuation.


@pytest.mark.slow
async def test_bundled_model_continues_an_assistant_prefill(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    ask: Any = [{"role": "user", "content": "Once upon a time"}]
    prefill = "I'm a little"
    greedy = {"temperature": 0}
    async with running(app), anthropic_sdk(app) as client:
        whole = await client.messages.create(
            model=GEMMA, max_tokens=40, messages=ask, extra_body=greedy
        )
        assert whole.content[0].text.strip().startswith(prefill)  # what it says unprompted
        continued = await client.messages.create(
            model=GEMMA,
            max_tokens=40,
            messages=[*ask, {"role": "assistant", "content": prefill}],
            extra_body=greedy,
        )
        text = continued.content[0].text
        assert not text.lstrip().startswith(prefill)  # only what follows the prefill
        assert prefill + text == whole.content[0].text.strip()  # the same answer, continued
        async with client.messages.stream(
            model=GEMMA,
            max_tokens=40,
            messages=[*ask, {"role": "assistant", "content": [{"type": "text", "text": prefill}]}],
            extra_body=greedy,
        ) as stream:
            pieces = [piece async for piece in stream.text_stream]
        assert "".join(pieces) == text


async def test_prefill_reaches_the_upstreams(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim, openai_sim: OpenAISim
) -> None:
    app = compat_app(tmp_path, database_url, openai=openai_sim, claude=anthropic_sim)
    prefilled: Any = [*HELLO, {"role": "assistant", "content": "The answer is "}]
    async with running(app), anthropic_sdk(app) as client:
        await client.messages.create(model=CLAUDE, max_tokens=16, messages=prefilled)
        sent = anthropic_sim.requests[-1].body["messages"]
        # Passed through for Anthropic to continue (trailing whitespace refused there).
        assert sent[-1] == {
            "role": "assistant",
            "content": [{"type": "text", "text": "The answer is"}],
        }
        await client.messages.create(model=GPT, max_tokens=16, messages=prefilled)
        sent = openai_sim.requests_to("/v1/chat/completions")[-1].body["messages"]
        assert sent[-1] == {"role": "assistant", "content": "The answer is "}  # as it is


def test_a_chat_template_prompt_ends_inside_the_prefilled_turn() -> None:
    def render(turns: list[dict[str, str]]) -> str:  # a template's shape: turns, then a cue
        body = "".join(f"<{t['role']}>{t['content']}<end>\n" for t in turns)
        return body + "<assistant>"

    asked = [Message("user", "Name a colour")]
    assert template_prompt(render, asked) == "<user>Name a colour<end>\n<assistant>"
    prefilled = [*asked, Message("assistant", "It is")]
    assert template_prompt(render, prefilled) == "<user>Name a colour<end>\n<assistant>It is"
    assert transcript(prefilled) == "User: Name a colour\nAssistant: It is"
    assert transcript(asked) == "User: Name a colour\nAssistant:"


@pytest.mark.parametrize("surface", ["openai", "anthropic"])
async def test_a_stream_cancelled_before_its_first_token_ends_with_a_cancelled_event(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim, surface: str
) -> None:
    """POST …/cancel while the upstream has not answered yet: the stream is a 200 whose
    events say it was cancelled (as on the native route), not a 500."""
    import asyncio

    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        openai_sim.delay_s = 3.0
        path, body = (
            ("/openai/v1/chat/completions", {"model": GPT, "messages": HELLO, "stream": True})
            if surface == "openai"
            else (
                "/anthropic/v1/messages",
                {"model": GPT, "max_tokens": 16, "messages": HELLO, "stream": True},
            )
        )
        call = asyncio.ensure_future(client.post(path, json=body, headers=ADMIN))
        live = app.state.container.generation.live
        for _ in range(200):
            if live.all():
                break
            await asyncio.sleep(0.01)
        (request,) = live.all()
        cancel = await client.post(f"/v1/requests/{request.request_id}/cancel", headers=ADMIN)
        assert cancel.json()["cancelled"] is True
        response = await asyncio.wait_for(call, 10)
        assert response.status_code == 200, response.text
        assert "cancelled" in response.text
        record = await client.get(f"/v1/requests/{request.request_id}", headers=ADMIN)
        assert record.json()["status"] == "cancelled"
