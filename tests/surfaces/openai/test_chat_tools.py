"""Tool calling, structured output and reasoning on /openai/v1/chat/completions, driven by
the official `openai` SDK: against the OpenAI simulator, OpenAI's wire format both ways
(tool calls JSON and streamed, tool results, `parse` with a pydantic model, the legacy
`functions`, DeepSeek's `reasoning_content`) and OpenAI's errors for what cannot be
served; against the bundled Gemma, grammar-constrained tool calls and JSON that parse
and validate on every seed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from tests.fixtures.openai_sim import DEFAULT_MODELS, OpenAISim, call_id, reasoning_of
from tests.generation.test_generate import gen_app
from tests.surfaces.openai.test_openai_compat import HELLO, Surface, error_of, gemma_app, serving

MODEL = "openai:gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}
WEATHER_ARGS = {"city": "city-1", "unit": "celsius"}  # the simulator's instance of the schema
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


class Weather(BaseModel):
    city: str
    degrees: int
    sky: Literal["clear", "cloudy"]


class GetWeather(BaseModel):
    """The weather in a city now."""

    city: str


@pytest.fixture
async def surface(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> AsyncIterator[Surface]:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with serving(app) as (api, client):
        yield Surface(app, api, client)


def sent_to(sim: OpenAISim) -> dict[str, Any]:
    body: dict[str, Any] = sim.requests_to("/v1/chat/completions")[-1].body
    return body


async def test_a_tool_call_answers_with_tool_calls_and_null_content(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    chat = await surface.api.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    choice = chat.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id == call_id(sent_to(openai_sim)["messages"], 0)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS


async def test_the_tools_reach_the_upstream_as_sent(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    await surface.api.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    assert sent_to(openai_sim)["tools"] == [WEATHER]


async def test_a_named_tool_choice_and_no_parallel_calls_reach_the_upstream(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    chat = await surface.api.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    sent = sent_to(openai_sim)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent["parallel_tool_calls"] is False
    assert chat.choices[0].message.tool_calls is not None
    assert [c.function.name for c in chat.choices[0].message.tool_calls] == ["get_time"]


async def test_tool_choice_required_reaches_the_upstream(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    await surface.api.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required"
    )
    assert sent_to(openai_sim)["tool_choice"] == "required"


async def test_tool_choice_none_answers_text(surface: Surface, openai_sim: OpenAISim) -> None:
    chat = await surface.api.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert chat.choices[0].finish_reason == "stop"
    assert chat.choices[0].message.content == "Echo: What is the weather in Paris?"
    assert chat.choices[0].message.tool_calls is None


async def test_a_streamed_tool_call_assembles_with_the_sdk_stream_helper(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    async with surface.api.chat.completions.stream(
        model=MODEL, messages=ASK, tools=[WEATHER]
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.id == call_id(sent_to(openai_sim)["messages"], 0)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS


async def test_streamed_tool_calls_name_each_call_in_its_first_fragment_only(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    stream = await surface.api.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Both, in parallel please"}],
        tools=[WEATHER, CLOCK],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    fragments = [f for c in chunks if c.choices for f in c.choices[0].delta.tool_calls or []]
    ids = call_id(sent_to(openai_sim)["messages"], 0), call_id(sent_to(openai_sim)["messages"], 1)
    for index, name in enumerate(("get_weather", "get_time")):
        mine = [f for f in fragments if f.index == index]
        first, rest = mine[0], mine[1:]
        assert (first.id, first.type) == (ids[index], "function")
        assert first.function is not None
        assert (first.function.name, first.function.arguments) == (name, "")
        assert len(rest) > 1  # the arguments in pieces
        assert all(f.id is None and f.type is None for f in rest)
        assert all(f.function is not None and f.function.name is None for f in rest)
        arguments = "".join(f.function.arguments or "" for f in mine if f.function)
        assert json.loads(arguments) == (WEATHER_ARGS if index == 0 else {"zone": "zone-1"})
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_a_tool_result_turn_reaches_the_upstream_and_is_answered(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)},
    }
    chat = await surface.api.chat.completions.create(
        model=MODEL,
        messages=[
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": "18 C, clear"},
        ],
        tools=[WEATHER],
    )
    assert chat.choices[0].finish_reason == "stop"
    assert chat.choices[0].message.content == "The tool said: 18 C, clear"
    history = sent_to(openai_sim)["messages"]
    assert history[1]["role"] == "assistant"
    assert history[1]["tool_calls"] == [call]
    assert not history[1].get("content")
    assert history[2] == {"role": "tool", "tool_call_id": "call_abc123", "content": "18 C, clear"}


async def test_a_tool_result_given_as_text_parts_is_joined(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    await surface.api.chat.completions.create(
        model=MODEL,
        messages=[
            *ASK,
            {"role": "assistant", "content": "Let me look.", "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": "noon"}, {"type": "text", "text": "UTC"}],
            },
        ],
        tools=[CLOCK],
    )
    history = sent_to(openai_sim)["messages"]
    assert history[1]["content"] == "Let me look."
    assert history[2] == {"role": "tool", "tool_call_id": "call_1", "content": "noon\nUTC"}


async def test_parse_with_a_pydantic_model_returns_an_instance(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    completion = await surface.api.chat.completions.parse(
        model=MODEL, messages=ASK, response_format=Weather
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Weather)
    assert parsed == Weather(city="city-1", degrees=1, sky="clear")
    fmt = sent_to(openai_sim)["response_format"]
    assert fmt["type"] == "json_schema"
    assert (fmt["json_schema"]["name"], fmt["json_schema"]["strict"]) == ("Weather", True)
    assert fmt["json_schema"]["schema"]["required"] == ["city", "degrees", "sky"]


async def test_parse_with_a_pydantic_tool_returns_parsed_arguments(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    completion = await surface.api.chat.completions.parse(
        model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)]
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.parsed_arguments == GetWeather(city="city-1")
    assert sent_to(openai_sim)["tools"][0]["function"]["strict"] is True


async def test_legacy_functions_answer_a_function_call(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    chat = await surface.api.chat.completions.create(
        model=MODEL,
        messages=ASK,
        functions=[WEATHER["function"]],
        function_call={"name": "get_weather"},
    )
    choice = chat.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == WEATHER_ARGS
    sent = sent_to(openai_sim)
    assert sent["tools"] == [WEATHER]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_a_legacy_function_call_streams_as_function_call_deltas(surface: Surface) -> None:
    stream = await surface.api.chat.completions.create(
        model=MODEL, messages=ASK, functions=[WEATHER["function"]], stream=True
    )
    chunks = [chunk async for chunk in stream]
    calls = [c.choices[0].delta.function_call for c in chunks if c.choices]
    pieces = [call for call in calls if call is not None]
    assert pieces[0].name == "get_weather"
    assert all(piece.name is None for piece in pieces[1:])
    assert json.loads("".join(p.arguments or "" for p in pieces)) == WEATHER_ARGS
    assert chunks[-1].choices[0].finish_reason == "function_call"


async def test_a_legacy_function_result_answers_the_call_before_it(
    surface: Surface, openai_sim: OpenAISim
) -> None:
    chat = await surface.api.chat.completions.create(
        model=MODEL,
        messages=[
            *ASK,
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": "{}"},
            },
            {"role": "function", "name": "get_weather", "content": "sunny"},
        ],
        functions=[WEATHER["function"]],
    )
    assert chat.choices[0].message.content == "The tool said: sunny"
    history = sent_to(openai_sim)["messages"]
    [call] = history[1]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": "{}"}
    assert history[2] == {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}


@pytest.fixture
async def reasoner(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> AsyncIterator[tuple[Surface, OpenAISim]]:
    """The gateway over a simulator that also serves a DeepSeek-style reasoner (shows its
    reasoning as `reasoning_content`) and an o-series model (takes `reasoning_effort`)."""
    sim = make_openai_sim([*DEFAULT_MODELS, "deepseek-reasoner", "o3-mini"])
    app = gen_app(tmp_path, database_url, sim)
    async with serving(app) as (api, client):
        yield Surface(app, api, client), sim


async def test_reasoning_content_passes_through(reasoner: tuple[Surface, OpenAISim]) -> None:
    surface, _ = reasoner
    chat = await surface.api.chat.completions.create(
        model="openai:deepseek-reasoner", messages=HELLO
    )
    message = chat.choices[0].message
    assert message.content == "Echo: hi"
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == reasoning_of(HELLO)


async def test_streamed_reasoning_comes_as_reasoning_content_deltas_before_the_text(
    reasoner: tuple[Surface, OpenAISim],
) -> None:
    surface, _ = reasoner
    stream = await surface.api.chat.completions.create(
        model="openai:deepseek-reasoner", messages=HELLO, stream=True
    )
    deltas = [c.choices[0].delta for c in [chunk async for chunk in stream] if c.choices]
    thinking = [d.model_extra["reasoning_content"] for d in deltas if d.model_extra]
    assert "".join(thinking) == reasoning_of(HELLO)
    assert len(thinking) > 1
    first_text = next(i for i, d in enumerate(deltas) if d.content)
    last_thought = max(i for i, d in enumerate(deltas) if d.model_extra)
    assert last_thought < first_text
    assert "".join(d.content or "" for d in deltas) == "Echo: hi"


async def test_reasoning_effort_reaches_a_reasoning_model(
    reasoner: tuple[Surface, OpenAISim],
) -> None:
    surface, sim = reasoner
    await surface.api.chat.completions.create(
        model="openai:o3-mini", messages=HELLO, reasoning_effort="high"
    )
    assert sent_to(sim)["reasoning_effort"] == "high"


async def test_a_reasoning_turn_sent_back_is_kept_from_the_upstream(
    reasoner: tuple[Surface, OpenAISim],
) -> None:
    """DeepSeek refuses an assistant turn carrying reasoning_content; the gateway keeps it
    on the native message and the provider leaves it out upstream."""
    surface, sim = reasoner
    chat = await surface.api.chat.completions.create(
        model="openai:deepseek-reasoner",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
            {"role": "user", "content": "again"},
        ],
    )
    assert chat.choices[0].message.content == "Echo: again"
    assert [m.get("reasoning_content") for m in sent_to(sim)["messages"]] == [None] * 3


TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        pytest.param(
            {"messages": [*ASK, {"role": "tool", "content": "18 C"}]},
            "messages[1].tool_call_id",
            "invalid_parameter",
            id="tool-message-without-call-id",
        ),
        pytest.param(
            {"messages": [*ASK, {"role": "function", "name": "f", "content": "x"}]},
            "messages[1].role",
            "invalid_parameter",
            id="function-message-without-call",
        ),
        pytest.param(
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "tool_calls": [{**TOOL_CALL, "type": "custom"}]},
                ]
            },
            "messages[1].tool_calls[0].type",
            "feature_not_supported",
            id="custom-tool-call-in-history",
        ),
        pytest.param(
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "tool_calls": [TOOL_CALL]},
                    {
                        "role": "tool",
                        "tool_call_id": "c1",
                        "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
                    },
                ]
            },
            "messages[2].content[0].type",
            "invalid_parameter",
            id="image-in-tool-result",
        ),
        pytest.param(
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
            "invalid_parameter",
            id="tool-choice-names-no-tool",
        ),
        pytest.param(
            {"tool_choice": "required"}, "tool_choice", "invalid_parameter", id="required-no-tools"
        ),
        pytest.param(
            {"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
            "tool_choice.type",
            "feature_not_supported",
            id="allowed-tools-choice",
        ),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "no spaces"}}]},
            "tools[0].function.name",
            "invalid_parameter",
            id="bad-function-name",
        ),
        pytest.param(
            {"tools": [WEATHER], "functions": [WEATHER["function"]]},
            "functions",
            "invalid_parameter",
            id="tools-and-functions",
        ),
        pytest.param(
            {"reasoning_effort": "extreme"},
            "reasoning_effort",
            "invalid_parameter",
            id="unknown-reasoning-effort",
        ),
        pytest.param(
            {"response_format": {"type": "json_schema"}},
            "response_format.json_schema",
            "invalid_parameter",
            id="json-schema-without-spec",
        ),
    ],
)
async def test_a_tool_request_that_cannot_be_served_is_an_openai_error(
    surface: Surface, fields: dict[str, Any], param: str, code: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": ASK, **fields}
    with pytest.raises(openai.BadRequestError) as rejected:
        await surface.api.chat.completions.create(**body)
    error = error_of(rejected.value)
    assert (error["param"], error["code"], error["type"]) == (
        param,
        code,
        "invalid_request_error",
    )


# The bundled Gemma: grammar-constrained tool calls and JSON on llama.cpp.
SEEDS = range(1, 21)


class City(BaseModel):
    """A city and what it is known for."""

    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population_millions: float


class LookUpCity(BaseModel):
    """Look a city up by name."""

    name: str = Field(max_length=40)
    with_weather: bool


@pytest.fixture
async def gemma_api(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> AsyncIterator[openai.AsyncOpenAI]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    async with serving(gemma_app(tmp_path, database_url, gemma_gguf)) as (api, _):
        yield api


@pytest.mark.slow
async def test_gemma_makes_a_forced_tool_call_that_validates_on_every_seed(
    gemma_api: openai.AsyncOpenAI,
) -> None:
    calls = []
    for seed in SEEDS:
        completion = await gemma_api.chat.completions.parse(
            model="local/gemma",
            messages=[{"role": "user", "content": "Tell me about Lyon."}],
            tools=[openai.pydantic_function_tool(LookUpCity)],
            tool_choice={"type": "function", "function": {"name": "LookUpCity"}},
            temperature=0.9,
            seed=seed,
            max_tokens=200,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls", (seed, choice)
        assert choice.message.tool_calls is not None
        [call] = choice.message.tool_calls
        assert call.function.name == "LookUpCity"
        assert call.id
        assert isinstance(call.function.parsed_arguments, LookUpCity), (seed, call)
        calls.append(call.function.parsed_arguments)
    assert len(calls) == len(SEEDS)


@pytest.mark.slow
async def test_gemma_answers_json_matching_a_schema_on_every_seed(
    gemma_api: openai.AsyncOpenAI,
) -> None:
    answers = []
    for seed in SEEDS:
        completion = await gemma_api.chat.completions.parse(
            model="local/gemma",
            messages=[{"role": "user", "content": "Describe a large city as JSON."}],
            response_format=City,
            temperature=0.9,
            seed=seed,
            max_tokens=200,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "stop", (seed, choice)
        assert isinstance(choice.message.parsed, City), (seed, choice.message.content)
        answers.append(choice.message.parsed)
    assert len(answers) == len(SEEDS)


@pytest.mark.slow
async def test_gemma_streams_a_forced_tool_call_in_openai_deltas(
    gemma_api: openai.AsyncOpenAI,
) -> None:
    async with gemma_api.chat.completions.stream(
        model="local/gemma",
        messages=[{"role": "user", "content": "Tell me about Lyon."}],
        tools=[openai.pydantic_function_tool(LookUpCity)],
        tool_choice="required",
        temperature=0.9,
        seed=3,
        max_tokens=200,
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.function.name == "LookUpCity"
    assert isinstance(call.function.parsed_arguments, LookUpCity)
