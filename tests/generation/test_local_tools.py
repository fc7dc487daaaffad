"""Tool calls and JSON output on the bundled Gemma 3 270M through /v1/generate: forced
calls and json_schema answers are grammar-constrained, so they parse and validate on
every seed whatever a 270M base model makes of the question; ``tool_choice: auto``
needs a chat template that takes tools, which Gemma lacks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, running
from tests.conftest import sse_frames as native_frames
from tests.generation.test_local_generation import local_app

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
GEMMA = "local/gemma"
ASK = {"prompt": "What is the weather like in Paris today?"}
# Small schemas keep twenty sampled runs quick: the grammar caps each string's length,
# so every answer ends well within max_tokens (even one spelled in \u escapes).
WEATHER_ARGS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_ARGS = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": WEATHER_ARGS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time in a timezone",
            "parameters": TIME_ARGS,
        },
    },
]
SCHEMAS = {"get_weather": WEATHER_ARGS, "get_time": TIME_ARGS}
FORECAST = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 10},
        "rain": {"type": "boolean"},
        "sky": {"type": "string", "enum": ["clear", "cloudy", "overcast"]},
    },
    "required": ["summary", "rain", "sky"],
    "additionalProperties": False,
}
SEEDS = range(1, 21)
SAMPLED = {"temperature": 1.0, "max_tokens": 160}
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture
async def client(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app serving the bundled Gemma."""
    app = local_app(tmp_path, database_url, gemma_gguf)
    async with running(app), client_for(app, timeout=120) as c:
        yield c


async def ask(client: httpx.AsyncClient, seed: int, **body: Any) -> dict[str, Any]:
    r = await generate(
        client, ADMIN, model=GEMMA, input=ASK, parameters={**SAMPLED, "seed": seed}, **body
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def the_call(answer: dict[str, Any]) -> tuple[str, Any]:
    """The answer's one tool call (name, arguments), checked against its tool's schema."""
    assert answer["finish_reason"] == "tool_calls"
    assert answer["output"]["text"] == ""
    (call,) = answer["output"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    name, arguments = call["function"]["name"], json.loads(call["function"]["arguments"])
    jsonschema.validate(arguments, SCHEMAS[name])
    return name, arguments


async def test_a_named_tool_call_parses_and_validates_on_twenty_seeds(
    client: httpx.AsyncClient,
) -> None:
    calls = [the_call(await ask(client, seed, tools=TOOLS, tool_choice=NAMED)) for seed in SEEDS]
    assert {name for name, _ in calls} == {"get_weather"}


async def test_a_required_tool_call_parses_and_validates_on_twenty_seeds(
    client: httpx.AsyncClient,
) -> None:
    calls = [
        the_call(await ask(client, seed, tools=TOOLS, tool_choice="required")) for seed in SEEDS
    ]
    assert {name for name, _ in calls} <= {"get_weather", "get_time"}


async def test_a_json_schema_answer_parses_and_validates_on_twenty_seeds(
    client: httpx.AsyncClient,
) -> None:
    answers = []
    fmt = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": FORECAST}}
    for seed in SEEDS:
        answer = await ask(client, seed, response_format=fmt)
        assert answer["finish_reason"] == "stop"
        assert answer["output"]["tool_calls"] == []
        forecast = json.loads(answer["output"]["text"])
        jsonschema.validate(forecast, FORECAST)
        answers.append(forecast)
    assert len({json.dumps(a) for a in answers}) > 1


async def test_a_json_object_answer_cut_by_max_tokens_says_length(
    client: httpx.AsyncClient,
) -> None:
    r = await generate(
        client,
        ADMIN,
        model=GEMMA,
        input={"prompt": "Describe Paris in JSON."},
        response_format={"type": "json_object"},
        parameters={"max_tokens": 3, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 3
    assert answer["output"]["text"].startswith("{")


async def test_a_forced_call_cut_by_max_tokens_says_length(client: httpx.AsyncClient) -> None:
    r = await generate(
        client,
        ADMIN,
        model=GEMMA,
        input=ASK,
        tools=TOOLS,
        tool_choice=NAMED,
        parameters={"max_tokens": 3, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["finish_reason"] == "length"
    (call,) = answer["output"]["tool_calls"]  # what was written of it, as OpenAI does
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"].startswith("{")


async def test_a_streamed_forced_call_sends_tool_call_deltas_and_no_text(
    client: httpx.AsyncClient,
) -> None:
    frames = await native_frames(
        client,
        ADMIN,
        model=GEMMA,
        input=ASK,
        tools=TOOLS,
        tool_choice="required",
        parameters={**SAMPLED, "seed": 7},
    )
    pieces = [f["choices"][0]["delta"] for f in frames if isinstance(f, dict) and "choices" in f]
    assert [set(p) for p in pieces] == [{"tool_calls"}] * len(pieces)  # the JSON is no text
    fragments = [p["tool_calls"][0] for p in pieces]
    first, rest = fragments[0], fragments[1:]
    assert first["index"] == 0
    assert first["type"] == "function"
    assert first["id"].startswith("call_")
    assert first["function"]["arguments"] == ""
    assert len(rest) >= 2  # the arguments come in pieces
    assert all(f["index"] == 0 and set(f) == {"index", "function"} for f in rest)
    arguments = json.loads("".join(f["function"]["arguments"] for f in rest))
    jsonschema.validate(arguments, SCHEMAS[first["function"]["name"]])
    complete = frames[-2]
    assert complete["event"] == "complete"
    assert complete["finish_reason"] == "tool_calls"


async def test_a_forced_call_follows_a_conversation_with_a_tool_result(
    client: httpx.AsyncClient,
) -> None:
    history = [
        {"role": "user", "content": "Weather in Paris, then the time in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    r = await generate(
        client,
        ADMIN,
        model=GEMMA,
        input={"messages": history},
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parameters={**SAMPLED, "seed": 3},
    )
    assert r.status_code == 200, r.text
    assert the_call(r.json())[0] == "get_time"


async def test_auto_tool_choice_on_a_model_without_a_tool_template_is_refused(
    client: httpx.AsyncClient,
) -> None:
    r = await generate(client, ADMIN, model=GEMMA, input=ASK, tools=TOOLS, tool_choice="auto")
    detail = assert_envelope(r, 400, "feature_not_supported")
    assert detail["message"] == (
        "No candidate model can answer this request: 'local/gemma' has no chat template "
        "that takes tools, so it cannot choose whether to call one (tool_choice 'auto'); "
        "ask for 'required' or name the function (grammar-constrained), or use a model "
        "whose template supports tools."
    )
