"""Tool calling, structured output and reasoning through the native API (/v1/generate)
to an OpenAI-compatible upstream: the OpenAI simulator as ``openai`` and as ``deepseek``
(a reasoner that shows its ``reasoning_content``). Each test checks both what the caller
gets and what went over the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.messages import Message
from pluggably.providers.base import ProviderCall, ToolCallDelta
from pluggably.providers.openai_compat import OpenAICompatProvider
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    deltas,
    generate,
    make_settings,
    running,
    sse_frames,
)
from tests.fixtures.canned import canned, upstream
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import (
    OpenAISim,
    argument_pieces,
    call_id,
    reasoning_of,
    tool_reply,
)
from tests.simulators.test_openai_sim_tools import TIME, WEATHER

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"
REASONER = "deepseek:deepseek-reasoner"
ASK = {"role": "user", "content": "What is the weather in Paris?"}
ARGUMENTS = json.dumps({"city": "city-1", "days": 1})


@pytest.fixture
def sim() -> Iterator[OpenAISim]:
    with serving(OpenAISim(["gpt-4o-mini", "deepseek-reasoner"]), "the OpenAI simulator") as s:
        yield s


@pytest.fixture
def app(tmp_path: Path, database_url: str, sim: OpenAISim) -> FastAPI:
    upstream = {"base_url": sim.base_url, "api_key": "sk-server-key-0001"}
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": upstream, "deepseek": upstream},
        server_keys_allowed=["@admins"],
    )
    return create_app(settings)


def sent(sim: OpenAISim) -> dict[str, Any]:
    """The body of the simulator's last chat request."""
    body: dict[str, Any] = sim.requests_to("/v1/chat/completions")[-1].body
    return body


async def test_a_tool_call_comes_back_in_output_tool_calls(app: FastAPI, sim: OpenAISim) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, tools=[WEATHER]
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["finish_reason"] == "tool_calls"
    assert body["output"]["tool_calls"] == [
        {
            "id": call_id([ASK], 0),
            "type": "function",
            "function": {"name": "get_weather", "arguments": ARGUMENTS},
        }
    ]
    assert body["usage"]["completion_tokens"] == len(argument_pieces(ARGUMENTS))
    assert sent(sim)["tools"] == [WEATHER]
    assert "tool_choice" not in sent(sim)  # auto: the API's default


async def test_the_streamed_tool_call_frames_assemble_to_the_json_answer(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        frames = await sse_frames(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, tools=[WEATHER]
        )
        answer = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, tools=[WEATHER]
        )
    fragments = [f for part in deltas(frames, "tool_calls") for f in part]
    assert fragments[0] == {
        "index": 0,
        "id": call_id([ASK], 0),
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    pieces = fragments[1:]
    assert pieces == [
        {"index": 0, "function": {"arguments": piece}} for piece in argument_pieces(ARGUMENTS)
    ]
    assembled = {
        "id": fragments[0]["id"],
        "type": "function",
        "function": {
            "name": fragments[0]["function"]["name"],
            "arguments": "".join(p["function"]["arguments"] for p in pieces),
        },
    }
    assert [assembled] == answer.json()["output"]["tool_calls"]
    complete = frames[-2]
    assert complete["event"] == "complete"
    assert complete["finish_reason"] == "tool_calls"
    assert deltas(frames, "content") == []


async def test_parallel_calls_stream_one_call_per_index(app: FastAPI, sim: OpenAISim) -> None:
    ask = {"role": "user", "content": "In parallel: weather and time"}
    async with running(app), client_for(app) as client:
        frames = await sse_frames(
            client, ADMIN, model=MODEL, input={"messages": [ask]}, tools=[WEATHER, TIME]
        )
    heads = [f for part in deltas(frames, "tool_calls") for f in part if "id" in f]
    assert [(h["index"], h["id"], h["function"]["name"]) for h in heads] == [
        (0, call_id([ask], 0), "get_weather"),
        (1, call_id([ask], 1), "get_time"),
    ]


async def test_tool_choice_and_parallel_tool_calls_go_upstream_as_given(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            parallel_tool_calls=False,
        )
    assert response.status_code == 200, response.text
    assert [c["function"]["name"] for c in response.json()["output"]["tool_calls"]] == ["get_time"]
    assert sent(sim)["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent(sim)["parallel_tool_calls"] is False


async def test_tool_choice_none_gets_text(app: FastAPI, sim: OpenAISim) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            tools=[WEATHER],
            tool_choice="none",
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["finish_reason"], body["output"]["text"]) == (
        "stop",
        "Echo: What is the weather in Paris?",
    )
    assert body["output"]["tool_calls"] == []
    assert sent(sim)["tool_choice"] == "none"


async def test_a_follow_up_with_the_tool_result_reaches_the_upstream_as_its_wire_messages(
    app: FastAPI, sim: OpenAISim
) -> None:
    call = {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ARGUMENTS},
    }
    history = [
        ASK,
        {"role": "assistant", "content": None, "tool_calls": [call], "reasoning": "I'll look"},
        {"role": "tool", "tool_call_id": "call_abc", "content": "Sunny, 21 C"},
    ]
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": history}, tools=[WEATHER]
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["finish_reason"], body["output"]["text"]) == ("stop", tool_reply("Sunny, 21 C"))
    assert sent(sim)["messages"] == [
        ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},  # reasoning not sent back
        {"role": "tool", "tool_call_id": "call_abc", "content": "Sunny, 21 C"},
    ]


async def test_a_json_schema_answer_parses_and_matches(app: FastAPI, sim: OpenAISim) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "score": {"type": "number"}},
        "required": ["title", "score"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "rating", "schema": schema, "strict": True},
    }
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "Rate it"}, response_format=response_format
        )
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["output"]["text"]) == {"title": "title-1", "score": 1.5}
    assert sent(sim)["response_format"] == response_format


async def test_a_reasoners_reasoning_content_is_output_reasoning(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(client, ADMIN, model=REASONER, input={"messages": [ASK]})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["reasoning"] == reasoning_of([ASK])
    assert output["text"] == "Echo: What is the weather in Paris?"


async def test_a_reasoners_stream_sends_reasoning_deltas_before_the_text(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        frames = await sse_frames(client, ADMIN, model=REASONER, input={"messages": [ASK]})
    kinds = [
        key
        for f in frames
        if isinstance(f, dict) and "choices" in f
        for key in f["choices"][0]["delta"]
    ]
    assert kinds == sorted(kinds, key=lambda k: k == "content")
    assert "".join(deltas(frames, "reasoning")) == reasoning_of([ASK])
    assert "".join(deltas(frames, "content")) == "Echo: What is the weather in Paris?"
    assert len(deltas(frames, "reasoning")) > 1


async def test_openrouter_style_reasoning_is_output_reasoning(app: FastAPI, sim: OpenAISim) -> None:
    sim.reasoning_field = "reasoning"
    async with running(app), client_for(app) as client:
        response = await generate(client, ADMIN, model=REASONER, input={"messages": [ASK]})
        frames = await sse_frames(client, ADMIN, model=REASONER, input={"messages": [ASK]})
    assert response.status_code == 200, response.text
    assert response.json()["output"]["reasoning"] == reasoning_of([ASK])
    assert "".join(deltas(frames, "reasoning")) == reasoning_of([ASK])


async def test_a_reasoners_tool_call_streams_its_reasoning_then_the_call(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        frames = await sse_frames(
            client, ADMIN, model=REASONER, input={"messages": [ASK]}, tools=[WEATHER]
        )
        answer = await generate(
            client, ADMIN, model=REASONER, input={"messages": [ASK]}, tools=[WEATHER]
        )
    assert "".join(deltas(frames, "reasoning")) == reasoning_of([ASK])
    [head] = [f for part in deltas(frames, "tool_calls") for f in part if "id" in f]
    assert head["function"]["name"] == "get_weather"
    body = answer.json()
    assert body["finish_reason"] == "tool_calls"
    assert body["output"]["reasoning"] == reasoning_of([ASK])
    assert [c["id"] for c in body["output"]["tool_calls"]] == [head["id"]]


async def test_reasoning_effort_goes_upstream_as_reasoning_effort(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=REASONER, input={"prompt": "hi"}, reasoning={"effort": "high"}
        )
    assert response.status_code == 200, response.text
    assert sent(sim)["reasoning_effort"] == "high"
    assert response.json()["warnings"] == []


async def test_a_reasoning_token_budget_is_ignored_with_a_warning(
    app: FastAPI, sim: OpenAISim
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=REASONER, input={"prompt": "hi"}, reasoning={"max_tokens": 500}
        )
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == [
        "'reasoning.max_tokens' was ignored: deepseek takes a reasoning effort (low, medium,"
        " high), not a token budget."
    ]
    assert "reasoning_effort" not in sent(sim)


async def test_the_upstreams_400_for_a_bad_tool_schema_is_a_clean_invalid_parameter(
    app: FastAPI, sim: OpenAISim
) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}
    async with running(app), client_for(app) as client:
        response = await generate(client, ADMIN, model=MODEL, input={"prompt": "x"}, tools=[bad])
    detail = assert_envelope(response, 400, "invalid_parameter")
    # The upstream's own words, which name what to fix (errors.from_status adds its own
    # full stop after them).
    assert detail["message"].startswith(
        "openai (gpt-4o-mini) rejected the request: Invalid schema for function 'f': schema"
        " must be a JSON Schema of 'type: \"object\"', got 'type: \"string\"'."
    )


def _sse(*chunks: dict[str, Any]) -> str:
    frames = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return "".join(frames) + "data: [DONE]\n\n"


def _fragment(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": [fields]}, "finish_reason": None}]}


async def _stream_of(body: str) -> list[Any]:
    answer = lambda: web.Response(text=body, content_type="text/event-stream")  # noqa: E731
    async with canned(answer) as url, upstream() as http:
        provider = OpenAICompatProvider("homelab", http, url)
        call = ProviderCall("llama3", [Message("user", "hi")])
        return [item async for item in provider.stream(call, {})]


async def test_fragments_without_an_index_are_numbered_by_their_ids() -> None:
    """Ollama and Gemini's OpenAI endpoint send no index: a new id is the next call."""
    items = await _stream_of(
        _sse(
            _fragment(id="a", type="function", function={"name": "f", "arguments": '{"x"'}),
            _fragment(function={"arguments": ": 1}"}),
            _fragment(id="b", type="function", function={"name": "g", "arguments": "{}"}),
        )
    )
    assert items[:-1] == [
        ToolCallDelta(0, "a", "f", '{"x"'),
        ToolCallDelta(0, None, None, ": 1}"),
        ToolCallDelta(1, "b", "g", "{}"),
    ]


async def test_a_name_and_id_repeated_in_every_fragment_are_sent_once() -> None:
    repeat = {"index": 0, "id": "a", "type": "function"}
    items = await _stream_of(
        _sse(
            _fragment(**repeat, function={"name": "get", "arguments": '{"c'}),
            _fragment(**repeat, function={"name": "get", "arguments": '": 1}'}),
        )
    )
    assert items[:-1] == [
        ToolCallDelta(0, "a", "get", '{"c'),
        ToolCallDelta(0, None, None, '": 1}'),
    ]


async def test_arguments_sent_as_an_object_become_json_text() -> None:
    items = await _stream_of(
        _sse(_fragment(index=0, id="a", function={"name": "f", "arguments": {"x": 1}}))
    )
    assert items[0] == ToolCallDelta(0, "a", "f", '{"x": 1}')
