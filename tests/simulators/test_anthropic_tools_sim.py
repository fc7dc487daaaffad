"""The Anthropic simulator's tools, thinking, structured output and token count, driven
through the official `anthropic` SDK: what it sends must be accepted, what the simulator
answers must parse, and what the real API refuses must be refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pydantic
import pytest

from tests.fixtures.anthropic_blocks import sign
from tests.fixtures.anthropic_sim import AnthropicSim, anthropic_sim  # noqa: F401
from tests.fixtures.schema_instance import instance

MODEL = "claude-sonnet-4-6"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
WEATHER: Any = {
    "name": "get_weather",
    "description": "The forecast for a city",
    "input_schema": WEATHER_SCHEMA,
}
TIME: Any = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
ASK: Any = [{"role": "user", "content": "weather in Paris?"}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
def sim(anthropic_sim: AnthropicSim) -> AnthropicSim:  # noqa: F811
    return anthropic_sim


@pytest.fixture
def client(sim: AnthropicSim) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="sk-test", base_url=sim.url, max_retries=0) as c:
        yield c


def create(client: anthropic.Anthropic, **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 2048, "messages": ASK, **kwargs}
    message: anthropic.types.Message = client.messages.create(**params)
    return message


def tool_turn(client: anthropic.Anthropic, **kwargs: Any) -> list[Any]:
    """The conversation after the model called get_weather: its turn and the result."""
    called = create(client, tools=[WEATHER], **kwargs)
    results = [
        {"type": "tool_result", "tool_use_id": b.id, "content": "sunny, 21 C"}
        for b in called.content
        if b.type == "tool_use"
    ]
    return [
        *ASK,
        {"role": "assistant", "content": called.content},
        {"role": "user", "content": results},
    ]


def test_a_tool_offered_is_called_with_input_made_from_its_schema(
    client: anthropic.Anthropic,
) -> None:
    message = create(client, tools=[WEATHER])
    assert message.stop_reason == "tool_use"
    [call] = message.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "city-1", "days": 1})
    assert call.id.startswith("toolu_01")


def test_a_streamed_tool_call_sends_its_input_in_json_pieces(
    client: anthropic.Anthropic,
) -> None:
    params: Any = {"model": MODEL, "max_tokens": 64, "messages": ASK, "tools": [WEATHER]}
    with client.messages.stream(**params) as stream:
        events = list(stream)
        final = stream.get_final_message()
    pieces = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(pieces) == 3
    assert json.loads("".join(pieces)) == {"city": "city-1", "days": 1}
    assert final.stop_reason == "tool_use"
    [call] = final.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "city-1", "days": 1})


def test_a_named_tool_choice_calls_that_tool(client: anthropic.Anthropic) -> None:
    message = create(
        client, tools=[WEATHER, TIME], tool_choice={"type": "tool", "name": "get_time"}
    )
    assert [(b.type, getattr(b, "name", None)) for b in message.content] == [
        ("tool_use", "get_time")
    ]


def test_parallel_calls_unless_disabled(sim: AnthropicSim, client: anthropic.Anthropic) -> None:
    sim.tool_calls_per_turn = 2
    both = create(client, tools=[WEATHER, TIME], tool_choice={"type": "any"})
    assert [getattr(b, "name", None) for b in both.content] == ["get_weather", "get_time"]
    one = create(
        client,
        tools=[WEATHER, TIME],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert [getattr(b, "name", None) for b in one.content] == ["get_weather"]


def test_tool_choice_none_answers_in_text(client: anthropic.Anthropic) -> None:
    message = create(client, tools=[WEATHER], tool_choice={"type": "none"})
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]


def test_a_tool_result_turn_is_answered_quoting_the_result(client: anthropic.Anthropic) -> None:
    message = create(client, tools=[WEATHER], messages=tool_turn(client))
    assert message.stop_reason == "end_turn"
    [block] = message.content
    assert block.type == "text"
    assert block.text == "Tool results: sunny, 21 C"


def test_a_tool_result_without_its_tool_use_is_refused(client: anthropic.Anthropic) -> None:
    stray = [{"type": "tool_result", "tool_use_id": "toolu_01nowhere", "content": "x"}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, tools=[WEATHER], messages=[{"role": "user", "content": stray}])
    assert "unexpected `tool_use_id` found in `tool_result` blocks: toolu_01nowhere" in str(
        caught.value
    )


def test_a_tool_use_left_unanswered_is_refused(client: anthropic.Anthropic) -> None:
    turns = tool_turn(client)
    turns[-1] = {"role": "user", "content": "never mind"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, tools=[WEATHER], messages=turns)
    assert "`tool_use` ids were found without `tool_result` blocks immediately after" in str(
        caught.value
    )


def test_an_invalid_tool_name_is_refused(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, tools=[{**WEATHER, "name": "get weather"}])
    assert "tools.0.custom.name: String should match pattern" in str(caught.value)


def test_count_tokens_matches_the_usage_of_the_same_request(client: anthropic.Anthropic) -> None:
    turns = tool_turn(client)
    counted = client.messages.count_tokens(model=MODEL, messages=turns, tools=[WEATHER])
    used = create(client, messages=turns, tools=[WEATHER]).usage.input_tokens
    assert counted.input_tokens == used
    # 3 per message; the tool's JSON words; "weather in Paris?" 3, the input 4, the result 3.
    assert used == 9 + 3 + 4 + 3 + len(json.dumps(WEATHER).split())


def test_thinking_comes_signed_before_the_answer(client: anthropic.Anthropic) -> None:
    message = create(client, thinking=THINKING)
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think about the question step by step."
    assert thinking.signature == sign(thinking.thinking)
    assert text.type == "text"


def test_streamed_thinking_sends_its_signature_after_the_text(
    client: anthropic.Anthropic,
) -> None:
    params: Any = {"model": MODEL, "max_tokens": 2048, "messages": ASK, "thinking": THINKING}
    with client.messages.stream(**params) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert kinds[:10] == ["thinking_delta"] * 9 + ["signature_delta"]
    assert set(kinds[10:]) == {"text_delta"}
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature == sign(thinking.thinking)


def test_thinking_sent_back_with_a_tool_turn_is_accepted(client: anthropic.Anthropic) -> None:
    turns = tool_turn(client, thinking=THINKING)
    assert [b.type for b in turns[1]["content"]] == ["thinking", "tool_use"]
    message = create(client, tools=[WEATHER], messages=turns, thinking=THINKING)
    assert [b.type for b in message.content] == ["thinking", "text"]


def test_tampered_thinking_is_refused(client: anthropic.Anthropic) -> None:
    turns = tool_turn(client, thinking=THINKING)
    thinking = turns[1]["content"][0]
    turns[1]["content"][0] = {
        "type": "thinking",
        "thinking": thinking.thinking + " And more.",
        "signature": thinking.signature,
    }
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, tools=[WEATHER], messages=turns, thinking=THINKING)
    assert "messages.1.content.0: Invalid `signature` in `thinking` block" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
        ({"max_tokens": 1024}, "`max_tokens` must be greater than `thinking.budget_tokens`"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "any"}},
            "Thinking may not be enabled when tool_choice forces tool use",
        ),
    ],
)
def test_thinking_configs_the_api_refuses(
    client: anthropic.Anthropic, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, **{"thinking": THINKING, **change})
    assert problem in str(caught.value)


def test_output_config_json_schema_answers_json_matching_it(client: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    message = create(client, output_config={"format": {"type": "json_schema", "schema": schema}})
    [block] = message.content
    assert block.type == "text"
    assert json.loads(block.text) == instance(schema) == {"name": "name-1"}


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_messages_parse_validates_into_the_model(client: anthropic.Anthropic) -> None:
    parsed = client.messages.parse(model=MODEL, max_tokens=64, messages=ASK, output_format=Person)
    assert parsed.parsed_output == Person(name="name-1", age=1)
