"""Tool calling, structured output and extended thinking through the native API
(/v1/generate) to Anthropic's Messages API (the Anthropic simulator), and the token
count. Each test checks both what the caller gets and what went over the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.messages import Message, ToolCall
from pluggably.providers.anthropic import JSON_INSTRUCTION, AnthropicProvider
from pluggably.providers.base import ProviderCall
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
from tests.fixtures.anthropic_blocks import sign
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.canned import upstream
from tests.fixtures.loopback import serving

ADMIN = {"X-API-Key": ADMIN_KEY}
BARE = "claude-sonnet-4-6"
MODEL = f"anthropic:{BARE}"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather", "parameters": SCHEMA},
}
TIME: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = {"role": "user", "content": "What is the weather in Paris?"}
ARGUMENTS = '{"city":"city-1","days":1}'
THOUGHT = "Let me think about the question step by step."


@pytest.fixture
def sim() -> Iterator[AnthropicSim]:
    with serving(AnthropicSim(), "the Anthropic simulator") as s:
        yield s


@pytest.fixture
def app(tmp_path: Path, database_url: str, sim: AnthropicSim) -> FastAPI:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"anthropic": {"base_url": sim.url, "api_key": "sk-ant-server-0001"}},
        server_keys_allowed=["@admins"],
    )
    return create_app(settings)


def sent(sim: AnthropicSim) -> dict[str, Any]:
    """The body of the simulator's last Messages request."""
    body: dict[str, Any] = [r for r in sim.requests if r.path == "/v1/messages"][-1].body
    return body


def call(sim_id: str, name: str = "get_weather", arguments: str = ARGUMENTS) -> dict[str, Any]:
    return {"id": sim_id, "type": "function", "function": {"name": name, "arguments": arguments}}


async def test_a_tool_call_comes_back_in_output_tool_calls(app: FastAPI, sim: AnthropicSim) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, tools=[WEATHER]
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["finish_reason"] == "tool_calls"
    [made] = body["output"]["tool_calls"]
    assert made == call(made["id"])
    assert made["id"].startswith("toolu_01")
    assert body["output"]["text"] == ""
    assert sent(sim)["tools"] == [
        {"name": "get_weather", "input_schema": SCHEMA, "description": "The weather"}
    ]
    assert sent(sim)["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("asked", "parallel", "upstream_choice"),
    [
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            {"type": "tool", "name": "get_time"},
        ),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
async def test_tool_choice_maps_to_anthropics(
    app: FastAPI, sim: AnthropicSim, asked: Any, parallel: bool | None, upstream_choice: Any
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            tools=[WEATHER, TIME],
            tool_choice=asked,
            parallel_tool_calls=parallel,
        )
    assert response.status_code == 200, response.text
    assert sent(sim)["tool_choice"] == upstream_choice


async def test_tool_choice_none_gets_text(app: FastAPI, sim: AnthropicSim) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            tools=[WEATHER],
            tool_choice="none",
        )
    body = response.json()
    assert (body["finish_reason"], body["output"]["tool_calls"]) == ("stop", [])
    assert body["output"]["text"] == "Echo: What is the weather in Paris?"


async def test_streamed_tool_calls_assemble_one_call_per_index(
    app: FastAPI, sim: AnthropicSim
) -> None:
    sim.tool_calls_per_turn = 2
    async with running(app), client_for(app) as client:
        frames = await sse_frames(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, tools=[WEATHER, TIME]
        )
        request_id = frames[-2]["request_id"]
        record = (await client.get(f"/v1/requests/{request_id}", headers=ADMIN)).json()
    fragments = [f for part in deltas(frames, "tool_calls") for f in part]
    firsts = [f for f in fragments if "id" in f]
    assert [(f["index"], f["function"]["name"]) for f in firsts] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert all(f["function"]["arguments"] == "" for f in firsts)
    arguments = [
        "".join(f["function"]["arguments"] for f in fragments if f["index"] == i) for i in (0, 1)
    ]
    assert [json.loads(a) for a in arguments] == [{"city": "city-1", "days": 1}, {}]
    assert len([f for f in fragments if f["index"] == 0]) == 4  # the start, then 3 pieces
    complete = frames[-2]
    assert complete["finish_reason"] == "tool_calls"
    # API.md §3: the complete frame leaves out only the text.
    assert complete["output"]["tool_calls"] == record["result"]["output"]["tool_calls"]
    assert record["result"]["output"]["tool_calls"] == [
        call(firsts[0]["id"], arguments=arguments[0]),
        call(firsts[1]["id"], "get_time", arguments[1]),
    ]


async def test_a_follow_up_with_tool_results_reaches_the_upstream_as_its_wire_messages(
    app: FastAPI, sim: AnthropicSim
) -> None:
    sim.tool_calls_per_turn = 2
    async with running(app), client_for(app) as client:
        first = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, tools=[WEATHER, TIME]
        )
        weather, time = first.json()["output"]["tool_calls"]
        turns = [
            ASK,
            {"role": "assistant", "content": "Checking.", "tool_calls": [weather, time]},
            {"role": "tool", "tool_call_id": weather["id"], "content": "sunny"},
            {"role": "tool", "tool_call_id": time["id"], "content": "noon"},
            {"role": "user", "content": "And tomorrow?"},
        ]
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": turns}, tools=[WEATHER, TIME]
        )
    assert response.status_code == 200, response.text
    assert response.json()["output"]["text"] == "Tool results: sunny | noon"
    assert sent(sim)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": ASK["content"]}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": weather["id"],
                    "name": "get_weather",
                    "input": {"city": "city-1", "days": 1},
                },
                {"type": "tool_use", "id": time["id"], "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": weather["id"], "content": "sunny"},
                {"type": "tool_result", "tool_use_id": time["id"], "content": "noon"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


async def test_reasoning_is_thinking_upstream_and_output_reasoning_with_its_signature(
    app: FastAPI, sim: AnthropicSim
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            reasoning={"effort": "medium"},
            parameters={"max_tokens": 100, "temperature": 0.2},
        )
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    # Marked as Anthropic's: another vendor's turn never receives it.
    assert (output["reasoning"], output["reasoning_signature"]) == (
        THOUGHT,
        f"anthropic:{sign(THOUGHT)}",
    )
    assert output["text"] == "Echo: What is the weather in Paris?"
    body = sent(sim)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 4196  # the answer's 100 on top of the thinking budget
    assert "temperature" not in body  # Anthropic takes none with thinking


async def test_streamed_reasoning_sends_its_signature_at_the_end_of_the_thinking(
    app: FastAPI, sim: AnthropicSim
) -> None:
    async with running(app), client_for(app) as client:
        frames = await sse_frames(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, reasoning={"max_tokens": 2000}
        )
    reasoning = [
        f["choices"][0]["delta"]
        for f in frames
        if isinstance(f, dict) and "choices" in f and "reasoning" in f["choices"][0]["delta"]
    ]
    assert "".join(d["reasoning"] for d in reasoning) == THOUGHT
    assert reasoning[-1] == {"reasoning": "", "reasoning_signature": f"anthropic:{sign(THOUGHT)}"}
    assert [d for d in reasoning if "reasoning_signature" in d] == [reasoning[-1]]
    assert sent(sim)["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    complete = frames[-2]
    assert complete["output"]["reasoning_signature"] == f"anthropic:{sign(THOUGHT)}"


async def test_reasoning_sent_back_with_a_tool_turn_is_accepted_upstream(
    app: FastAPI, sim: AnthropicSim
) -> None:
    ask: dict[str, Any] = {"tools": [WEATHER], "reasoning": {"effort": "low"}}
    async with running(app), client_for(app) as client:
        first = (
            await generate(client, ADMIN, model=MODEL, input={"messages": [ASK]}, **ask)
        ).json()
        output = first["output"]
        [made] = output["tool_calls"]
        assistant = {
            "role": "assistant",
            "content": "",
            "tool_calls": [made],
            "reasoning": output["reasoning"],
            "reasoning_signature": output["reasoning_signature"],
        }
        result = {"role": "tool", "tool_call_id": made["id"], "content": "sunny"}
        turns = [ASK, assistant, result]
        response = await generate(client, ADMIN, model=MODEL, input={"messages": turns}, **ask)
        assert response.status_code == 200, response.text
        assert response.json()["output"]["text"] == "Tool results: sunny"
        assert sent(sim)["messages"][1]["content"][0] == {
            "type": "thinking",
            "thinking": THOUGHT,
            "signature": sign(THOUGHT),
        }
        tampered = {**assistant, "reasoning": THOUGHT + " Also."}
        refused = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK, tampered, result]}, **ask
        )
    detail = assert_envelope(refused, 400, "invalid_parameter")
    assert "Invalid `signature` in `thinking` block" in detail["message"]


async def test_a_tool_loop_without_anthropics_signed_thinking_goes_on_without_thinking(
    app: FastAPI, sim: AnthropicSim
) -> None:
    """Anthropic refuses thinking when the loop's assistant turn has no signed thinking
    block (a call made elsewhere, or by a client that cannot send signatures back)."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    turns = [
        ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [call],
            "reasoning_signature": "google:c2ln",
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": turns},
            tools=[WEATHER],
            reasoning={"effort": "low"},
            parameters={"temperature": 0.3},
        )
    assert response.status_code == 200, response.text
    body = sent(sim)
    assert "thinking" not in body
    assert body["temperature"] == 0.3
    assert body["messages"][1]["content"][0]["type"] == "tool_use"  # no thinking block


async def test_reasoning_with_a_forced_tool_call_is_refused_before_anything_is_sent(
    app: FastAPI, sim: AnthropicSim
) -> None:
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            tools=[WEATHER],
            tool_choice="required",
            reasoning={"effort": "low"},
        )
    detail = assert_envelope(response, 400, "feature_not_supported")
    assert "cannot think (reasoning) while a tool call is forced" in detail["message"]
    assert [r for r in sim.requests if r.path == "/v1/messages"] == []


async def test_a_json_schema_answer_uses_anthropics_structured_output(
    app: FastAPI, sim: AnthropicSim
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, response_format=fmt
        )
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["output"]["text"]) == {"city": "city-1", "days": 1}
    # Closed, as Anthropic's structured outputs take a schema (and its SDK sends one).
    closed = {**SCHEMA, "additionalProperties": False}
    assert sent(sim)["output_config"] == {"format": {"type": "json_schema", "schema": closed}}
    assert "system" not in sent(sim)


async def test_a_json_object_answer_is_asked_for_in_the_system_prompt(
    app: FastAPI, sim: AnthropicSim
) -> None:
    sim.set_reply(BARE, '{"ok": true}')
    async with running(app), client_for(app) as client:
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"messages": [ASK]},
            response_format={"type": "json_object"},
        )
    assert json.loads(response.json()["output"]["text"]) == {"ok": True}
    assert sent(sim)["system"] == JSON_INSTRUCTION
    assert "output_config" not in sent(sim)


async def test_count_tokens_is_anthropics_count_of_the_same_body(sim: AnthropicSim) -> None:
    conversation = [
        Message("system", "Be brief."),
        Message("user", "weather in Paris?"),
        Message("assistant", "", tool_calls=(ToolCall("toolu_1", "get_weather", ARGUMENTS),)),
        Message("tool", "sunny", tool_call_id="toolu_1"),
    ]
    tool_call = ProviderCall(BARE, conversation, parameters={"max_tokens": 50, "temperature": 0.5})
    async with upstream() as client:
        provider = AnthropicProvider("anthropic", client, sim.url)
        counted = await provider.count_tokens(tool_call, {"api_key": "sk-ant-1"})
        answer = await provider.complete(tool_call, {"api_key": "sk-ant-1"})
    request = sim.requests[0]
    assert request.path == "/v1/messages/count_tokens"
    assert request.body == {
        "model": BARE,
        "system": "Be brief.",
        "messages": sent(sim)["messages"],
    }
    assert answer.usage is not None
    assert counted == answer.usage.prompt_tokens == 2 + 3 * 3 + 3 + 4 + 1


async def test_a_schema_with_keywords_anthropic_does_not_take_is_sent_as_its_sdk_sends_it(
    app: FastAPI, sim: AnthropicSim
) -> None:
    """Anthropic refuses 'minimum' and friends; its SDK moves them into the description."""
    from anthropic.lib._parse._transform import transform_schema

    schema = {
        "type": "object",
        "properties": {
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "city": {"type": "string", "maxLength": 40, "format": "hostname"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["days", "city", "tags"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
    async with running(app), client_for(app) as client:
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": [ASK]}, response_format=fmt
        )
    assert response.status_code == 200, response.text
    assert sent(sim)["output_config"]["format"]["schema"] == transform_schema(schema)
