"""The OpenAI simulator's tool calling, structured outputs and reasoning, checked with the
official `openai` SDK: what the SDK's helpers (`chat.completions.stream`, `.parse`,
`pydantic_function_tool`) accept from it is what a gateway will see from upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest
from pydantic import BaseModel

from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import (
    OpenAISim,
    argument_pieces,
    call_id,
    reasoning_of,
    tokenize,
    tool_reply,
)

pytest.importorskip("openai", reason="the simulator is checked against the official SDK")
import openai
from openai import OpenAI

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

MODEL = "gpt-4o-mini"
REASONER = "deepseek-reasoner"
KEY = "sk-test-0123456789abcdef"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


class GetWeather(BaseModel):
    city: str
    days: int


class Answer(BaseModel):
    title: str
    score: float
    tags: list[str]


@pytest.fixture
def sim() -> Iterator[OpenAISim]:
    with serving(OpenAISim([MODEL, REASONER, "o3-mini"]), "the OpenAI simulator") as s:
        yield s


@pytest.fixture
def client(sim: OpenAISim) -> Iterator[OpenAI]:
    with OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0) as c:
        yield c


def msgs(*items: dict[str, Any]) -> list[ChatCompletionMessageParam]:
    return [cast("ChatCompletionMessageParam", m) for m in items]


def tools(*items: dict[str, Any]) -> list[ChatCompletionToolParam]:
    return [cast("ChatCompletionToolParam", t) for t in items]


ASK = {"role": "user", "content": "What is the weather in Paris?"}


def test_a_tool_call_comes_back_with_arguments_filling_the_tools_schema(client: OpenAI) -> None:
    out = client.chat.completions.create(model=MODEL, messages=msgs(ASK), tools=tools(WEATHER))
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id == call_id([ASK], 0)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "city-1", "days": 1}
    assert out.usage is not None
    assert out.usage.completion_tokens == len(argument_pieces(call.function.arguments))


def test_the_sdk_stream_helper_assembles_a_streamed_strict_tool_call(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL, messages=msgs(ASK), tools=[openai.pydantic_function_tool(GetWeather)]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert kinds.count("tool_calls.function.arguments.delta") > 2
    assert kinds.count("tool_calls.function.arguments.done") == 1
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="city-1", days=1)


def test_a_streamed_tool_call_sends_id_and_name_first_then_argument_pieces(
    client: OpenAI,
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=msgs(ASK),
            tools=tools(WEATHER),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    fragments = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    first, rest = fragments[0], fragments[1:]
    assert (first.index, first.id, first.type) == (0, call_id([ASK], 0), "function")
    assert first.function is not None
    assert (first.function.name, first.function.arguments) == ("get_weather", "")
    assert all(f.id is None and f.function and f.function.name is None for f in rest)
    arguments = "".join(f.function.arguments or "" for f in rest if f.function)
    assert json.loads(arguments) == {"city": "city-1", "days": 1}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(rest)


def test_a_prompt_asking_for_parallel_calls_gets_one_call_per_tool(client: OpenAI) -> None:
    ask = {"role": "user", "content": "In parallel: weather and time"}
    out = client.chat.completions.create(
        model=MODEL, messages=msgs(ask), tools=tools(WEATHER, TIME)
    )
    calls = out.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [
        (call_id([ask], 0), "get_weather"),
        (call_id([ask], 1), "get_time"),
    ]


def test_parallel_tool_calls_false_makes_a_single_call(client: OpenAI) -> None:
    ask = {"role": "user", "content": "In parallel: weather and time"}
    out = client.chat.completions.create(
        model=MODEL, messages=msgs(ask), tools=tools(WEATHER, TIME), parallel_tool_calls=False
    )
    assert [c.function.name for c in out.choices[0].message.tool_calls or []] == ["get_weather"]


def test_a_named_tool_choice_calls_that_tool(client: OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL,
        messages=msgs(ASK),
        tools=tools(WEATHER, TIME),
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    [call] = out.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_time",
        {"zone": "zone-1"},
    )


def test_tool_choice_none_answers_with_text(client: OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=msgs(ASK), tools=tools(WEATHER), tool_choice="none"
    )
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == "Echo: What is the weather in Paris?"
    assert out.choices[0].message.tool_calls is None


def test_a_follow_up_with_the_tool_result_gets_an_answer_quoting_it(client: OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=msgs(ASK), tools=tools(WEATHER))
    call = (first.choices[0].message.tool_calls or [])[0]
    follow_up = msgs(
        ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    )
    out = client.chat.completions.create(model=MODEL, messages=follow_up, tools=tools(WEATHER))
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == tool_reply("Sunny, 21 C")


ASKED = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ],
}


@pytest.mark.parametrize(
    ("messages", "message", "param"),
    [
        (
            [ASK, {"role": "tool", "tool_call_id": "call_1", "content": "x"}],
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding"
            " message with 'tool_calls'.",
            "messages.[1].role",
        ),
        (
            [ASK, ASKED, {"role": "tool", "tool_call_id": "call_9", "content": "x"}],
            "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous"
            " message.",
            "messages.[2].tool_call_id",
        ),
        (
            [ASK, ASKED, ASK],
            "An assistant message with 'tool_calls' must be followed by tool messages responding"
            " to each 'tool_call_id'. The following tool_call_ids did not have response"
            " messages: call_1",
            "messages.[1].role",
        ),
    ],
    ids=["tool-without-a-call", "unknown-call-id", "unanswered-call"],
)
def test_a_tool_turn_out_of_place_is_refused_like_the_real_api(
    client: OpenAI, messages: list[dict[str, Any]], message: str, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=msgs(*messages), tools=tools(WEATHER))
    assert err.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": None,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"tools": tools({"type": "function", "function": {"name": "get weather"}})},
            "Invalid 'tools[0].function.name': string does not match pattern. Expected a string"
            " that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        ),
        (
            {
                "tools": tools(WEATHER),
                "tool_choice": {"type": "function", "function": {"name": "x"}},
            },
            "Invalid value for 'tool_choice': function 'x' not found in 'tools'.",
        ),
        (
            {"tool_choice": "required"},
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are"
            " specified.",
        ),
        (
            {"tools": tools(WEATHER), "tool_choice": "always"},
            "Invalid value: 'always'. Supported values are: 'none', 'auto', and 'required'.",
        ),
        (
            {"reasoning_effort": "high"},
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
        ),
    ],
    ids=["tool-name", "unknown-named-tool", "choice-without-tools", "bad-choice", "effort"],
)
def test_bad_tool_and_reasoning_fields_are_refused(
    client: OpenAI, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=msgs(ASK), **extra)
    assert cast("dict[str, Any]", err.value.body)["message"] == message


def test_parse_with_a_pydantic_model_returns_a_valid_instance(client: OpenAI) -> None:
    out = client.chat.completions.parse(
        model=MODEL, messages=msgs({"role": "user", "content": "Rate it"}), response_format=Answer
    )
    assert out.choices[0].message.parsed == Answer(title="title-1", score=1.5, tags=["tags-1"])


def test_a_streamed_structured_output_parses_with_the_sdk_stream_helper(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL, messages=msgs({"role": "user", "content": "Rate it"}), response_format=Answer
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert kinds.count("content.delta") > 1
    assert final.choices[0].message.parsed == Answer(title="title-1", score=1.5, tags=["tags-1"])


def test_a_strict_schema_that_is_not_closed_is_refused(client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL,
            messages=msgs(ASK),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "thing", "schema": schema, "strict": True},
            },
        )
    assert cast("dict[str, Any]", err.value.body)["message"] == (
        "Invalid schema for response_format 'thing': In context=(), 'additionalProperties' is"
        " required to be supplied and to be false."
    )


def test_a_json_schema_without_a_name_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL,
            messages=msgs(ASK),
            response_format=cast("Any", {"type": "json_schema", "json_schema": {"schema": {}}}),
        )
    assert cast("dict[str, Any]", err.value.body)["param"] == "response_format.json_schema.name"


def test_a_reasoner_shows_its_reasoning_content(client: OpenAI) -> None:
    out = client.chat.completions.create(model=REASONER, messages=msgs(ASK))
    message = out.choices[0].message
    assert message.content == "Echo: What is the weather in Paris?"
    assert getattr(message, "reasoning_content") == reasoning_of([ASK])  # noqa: B009
    assert out.usage is not None
    assert out.usage.completion_tokens_details is not None
    assert out.usage.completion_tokens_details.reasoning_tokens == len(
        tokenize(reasoning_of([ASK]))
    )


def test_a_reasoner_streams_its_reasoning_before_the_answer(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=REASONER, messages=msgs(ASK), stream=True))
    order = []
    for chunk in chunks:
        delta = chunk.choices[0].delta
        if thought := getattr(delta, "reasoning_content", None):
            order.append(("reasoning", thought))
        if delta.content:
            order.append(("content", delta.content))
    kinds = [kind for kind, _ in order]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # every reasoning piece first
    assert "".join(t for k, t in order if k == "reasoning") == reasoning_of([ASK])
    assert "".join(t for k, t in order if k == "content") == "Echo: What is the weather in Paris?"


def test_reasoning_content_sent_back_is_refused(client: OpenAI) -> None:
    turn = {"role": "assistant", "content": "Hi", "reasoning_content": "thought"}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=REASONER, messages=msgs(ASK, turn, ASK))
    assert cast("dict[str, Any]", err.value.body)["param"] == "messages[1].reasoning_content"


def test_a_reasoning_model_takes_reasoning_effort(client: OpenAI, sim: OpenAISim) -> None:
    out = client.chat.completions.create(
        model="o3-mini", messages=msgs(ASK), reasoning_effort="low"
    )
    assert out.choices[0].message.content == "Echo: What is the weather in Paris?"
    assert getattr(out.choices[0].message, "reasoning_content", None) is None  # kept hidden
    assert sim.requests_to("/v1/chat/completions")[-1].body["reasoning_effort"] == "low"
