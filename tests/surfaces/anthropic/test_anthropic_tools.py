"""Tools, structured output and reasoning on the Anthropic-compatible surface, driven by
the official `anthropic` SDK: against the OpenAI simulator (the gateway translates
Anthropic's blocks to the native conversation, the provider to OpenAI's wire), then
against the Anthropic simulator (blocks, signatures and counts round-tripped)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import pydantic
import pytest

from tests.conftest import ADMIN_KEY, client_for, running
from tests.fixtures.anthropic_blocks import sign
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.openai_sim import OpenAISim, call_id
from tests.fixtures.prompts import GREEDY
from tests.fixtures.schema_instance import instance
from tests.surfaces.anthropic.test_anthropic_compat import (
    ADMIN,
    FRANCE,
    GEMMA,
    GPT,
    PNG,
    Surface,
    compat_app,
    gemma_app,
    named_events,
    raw_stream,
    sdk,
)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
WEATHER = {"name": "get_weather", "description": "The forecast", "input_schema": WEATHER_SCHEMA}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
ARGUMENTS = instance(WEATHER_SCHEMA)
COMPACT_ARGUMENTS = json.dumps(ARGUMENTS, separators=(",", ":"))  # the input, as JSON text


@pytest.fixture
async def gpt(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[Surface]:
    app = compat_app(tmp_path, database_url, openai=openai_sim)
    async with running(app), sdk(app) as client, client_for(app) as http:
        yield Surface(app, client, http)


def sent_call_id(openai_sim: OpenAISim, index: int = 0) -> str:
    """The id the simulator gave its call for the conversation it last received."""
    return call_id(openai_sim.requests[-1].body["messages"], index)


async def test_a_tool_call_is_a_tool_use_block(gpt: Surface, openai_sim: OpenAISim) -> None:
    message = await gpt.client.messages.create(
        model=GPT, max_tokens=64, tools=[WEATHER], messages=ASK
    )
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
        ("tool_use", sent_call_id(openai_sim), "get_weather", ARGUMENTS)
    ]
    assert message.stop_reason == "tool_use"
    assert openai_sim.requests[-1].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The forecast",
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]


async def test_a_streamed_tool_call_assembles_from_input_json_deltas(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    async with gpt.client.messages.stream(
        model=GPT, max_tokens=64, tools=[WEATHER], messages=ASK
    ) as stream:
        final = await stream.get_final_message()
    assert [(b.type, b.id, b.name, b.input) for b in final.content] == [
        ("tool_use", sent_call_id(openai_sim), "get_weather", ARGUMENTS)
    ]
    assert final.stop_reason == "tool_use"


async def test_a_streamed_tool_call_is_one_block_of_json_pieces_on_the_wire(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    text = await raw_stream(
        gpt.http, {"x-api-key": ADMIN_KEY}, model=GPT, max_tokens=64, tools=[WEATHER], messages=ASK
    )
    events = named_events(text)
    start = next(data for name, data in events if name == "content_block_start")
    call = {"type": "tool_use", "id": sent_call_id(openai_sim), "name": "get_weather", "input": {}}
    assert start == {"type": "content_block_start", "index": 0, "content_block": call}
    pieces = [d["delta"] for name, d in events if name == "content_block_delta"]
    assert {p["type"] for p in pieces} == {"input_json_delta"}
    assert len(pieces) > 1
    assert json.loads("".join(p["partial_json"] for p in pieces)) == ARGUMENTS
    assert [name for name, _ in events][-4:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


async def test_parallel_calls_are_one_tool_use_block_each(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    ask = [{"role": "user", "content": "Weather and time, in parallel"}]
    async with gpt.client.messages.stream(
        model=GPT, max_tokens=64, tools=[WEATHER, TIME], messages=ask
    ) as stream:
        final = await stream.get_final_message()
    assert [(b.type, b.id, b.name, b.input) for b in final.content] == [
        ("tool_use", sent_call_id(openai_sim, 0), "get_weather", ARGUMENTS),
        ("tool_use", sent_call_id(openai_sim, 1), "get_time", {}),
    ]


TOOL_TURN: list[Any] = [
    *ASK,
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": ARGUMENTS},
        ],
    },
]


async def test_a_tool_result_reaches_the_model_as_a_tool_message(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 degrees"}
    message = await gpt.client.messages.create(
        model=GPT,
        max_tokens=64,
        tools=[WEATHER],
        messages=[*TOOL_TURN, {"role": "user", "content": [result]}],
    )
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "The tool said: 18 degrees")
    ]
    assert message.stop_reason == "end_turn"
    assert openai_sim.requests[-1].body["messages"] == [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": COMPACT_ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18 degrees"},
    ]


async def test_tool_results_then_text_are_tool_messages_then_a_user_message(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    blocks = [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01",
            "content": [{"type": "text", "text": "18"}, {"type": "text", "text": "degrees"}],
        },
        {"type": "text", "text": "Thanks."},
    ]
    await gpt.client.messages.create(
        model=GPT,
        max_tokens=64,
        tool_choice={"type": "none"},
        tools=[WEATHER],
        messages=[*TOOL_TURN, {"role": "user", "content": blocks}],
    )
    assert openai_sim.requests[-1].body["messages"][-2:] == [
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18\n\ndegrees"},
        {"role": "user", "content": "Thanks."},
    ]


@pytest.mark.parametrize(
    ("choice", "tool_choice", "parallel"),
    [
        pytest.param({"type": "auto"}, None, None, id="auto"),  # the default: not sent
        pytest.param({"type": "any"}, "required", None, id="any"),
        pytest.param(
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
            {"type": "function", "function": {"name": "get_time"}},
            False,
            id="tool",
        ),
        pytest.param({"type": "none"}, "none", None, id="none"),
    ],
)
async def test_tool_choice_reaches_the_upstream_in_its_terms(
    gpt: Surface,
    openai_sim: OpenAISim,
    choice: dict[str, Any],
    tool_choice: Any,
    parallel: bool | None,
) -> None:
    await gpt.client.messages.create(
        model=GPT, max_tokens=64, tools=[WEATHER, TIME], tool_choice=choice, messages=ASK
    )
    sent = openai_sim.requests[-1].body
    assert (sent.get("tool_choice"), sent.get("parallel_tool_calls")) == (tool_choice, parallel)


class Forecast(pydantic.BaseModel):
    city: str
    days: int


async def test_output_config_json_schema_answers_json_of_the_schema(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    schema = Forecast.model_json_schema()
    message = await gpt.client.messages.create(
        model=GPT,
        max_tokens=64,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=ASK,
    )
    assert json.loads(message.content[0].text) == instance(schema)
    sent = openai_sim.requests[-1].body["response_format"]
    assert (sent["type"], sent["json_schema"]["schema"]) == ("json_schema", schema)


async def test_messages_parse_gives_a_validated_model(gpt: Surface) -> None:
    parsed = await gpt.client.messages.parse(
        model=GPT, max_tokens=64, output_format=Forecast, messages=ASK
    )
    assert parsed.parsed_output == Forecast(city="city-1", days=1)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_reasoners_reasoning_is_a_thinking_block_without_signature(
    tmp_path: Path,
    database_url: str,
    make_openai_sim: Callable[..., OpenAISim],
    streamed: bool,
) -> None:
    """DeepSeek's reasoner (through an OpenAI-compatible endpoint) shows its reasoning;
    it has no signature to give, and the SDK takes the empty one."""
    reasoner = make_openai_sim(models=["deepseek-reasoner"])
    app = compat_app(
        tmp_path,
        database_url,
        endpoints={"deep": {"base_url": reasoner.base_url, "api_key": "sk-deep-0001"}},
    )
    body: dict[str, Any] = {"model": "deep:deepseek-reasoner", "max_tokens": 64, "messages": ASK}
    async with running(app), sdk(app) as client:
        if streamed:
            async with client.messages.stream(**body) as stream:
                message = await stream.get_final_message()
        else:
            message = await client.messages.create(**body)
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == (
        "The user wrote: What is the weather in Paris?. I should answer.",
        "",
    )
    assert text.type == "text"
    assert text.text


async def test_counting_tokens_for_an_openai_model_is_an_estimate(gpt: Surface) -> None:
    counted = await gpt.client.messages.with_raw_response.count_tokens(
        model=GPT, messages=[{"role": "user", "content": "hello there"}]
    )
    assert counted.headers["x-pluggably-token-estimate"] == "true"
    # 11 characters at about 3 a token, and 4 for the turn's markers.
    assert (await counted.parse()).input_tokens == 8


async def test_counting_tokens_counts_the_tools_too(gpt: Surface) -> None:
    bare = await gpt.client.messages.count_tokens(model=GPT, messages=ASK)
    with_tools = await gpt.client.messages.count_tokens(model=GPT, messages=ASK, tools=[WEATHER])
    assert with_tools.input_tokens > bare.input_tokens


async def test_counting_tokens_for_an_unknown_model_is_not_found(gpt: Surface) -> None:
    with pytest.raises(anthropic.NotFoundError, match="no-such-model"):
        await gpt.client.messages.count_tokens(model="local/no-such-model", messages=ASK)


# Against the Anthropic simulator: Anthropic's blocks through the gateway and back.

CLAUDE = "claude-3-5-haiku-latest"
THINK = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
async def claude(
    tmp_path: Path, database_url: str, anthropic_sim: AnthropicSim
) -> AsyncIterator[Surface]:
    app = compat_app(tmp_path, database_url, claude=anthropic_sim)
    async with running(app), sdk(app) as client, client_for(app) as http:
        yield Surface(app, client, http)


async def test_anthropics_tool_use_keeps_its_id(
    claude: Surface, anthropic_sim: AnthropicSim
) -> None:
    message = await claude.client.messages.create(
        model=CLAUDE, max_tokens=64, tools=[WEATHER], messages=ASK
    )
    (call,) = message.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", ARGUMENTS)
    assert call.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert anthropic_sim.requests[-1].body["tools"] == [WEATHER]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_signed_thinking_block_comes_back_and_reaches_anthropic_unchanged(
    claude: Surface, anthropic_sim: AnthropicSim, streamed: bool
) -> None:
    body: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": 2048,
        "thinking": THINK,
        "tools": [WEATHER],
        "messages": ASK,
    }
    if streamed:
        async with claude.client.messages.stream(**body) as stream:
            first = await stream.get_final_message()
    else:
        first = await claude.client.messages.create(**body)
    thinking, call = first.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think about the question step by step."
    assert thinking.signature  # opaque: the gateway may mark it with its vendor
    assert call.type == "tool_use"
    assert anthropic_sim.requests[-1].body["thinking"] == THINK

    result = {"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"}
    history = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    second = await claude.client.messages.create(**{**body, "messages": history})
    sent = anthropic_sim.requests[-1].body["messages"][1]["content"]
    assert sent[0] == {
        "type": "thinking",
        "thinking": thinking.thinking,
        "signature": sign(thinking.thinking),  # Anthropic's own, as it gave it
    }
    assert sent[1] == {"type": "tool_use", "id": call.id, "name": "get_weather", "input": ARGUMENTS}
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert second.stop_reason == "end_turn"


async def test_a_tool_result_reaches_anthropic_as_a_tool_result_block(
    claude: Surface, anthropic_sim: AnthropicSim
) -> None:
    history: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": ARGUMENTS}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 degrees"}
            ],
        },
    ]
    message = await claude.client.messages.create(
        model=CLAUDE, max_tokens=64, tools=[WEATHER], messages=history
    )
    assert message.stop_reason == "end_turn"
    assert "18 degrees" in message.content[0].text
    sent = anthropic_sim.requests[-1].body["messages"][-1]
    assert sent["role"] == "user"
    assert [(b["type"], b["tool_use_id"]) for b in sent["content"]] == [("tool_result", "toolu_01")]


async def test_counting_tokens_for_an_anthropic_model_is_anthropics_count(
    claude: Surface, anthropic_sim: AnthropicSim
) -> None:
    counted = await claude.client.messages.with_raw_response.count_tokens(
        model=CLAUDE, system="Be brief.", tools=[WEATHER], messages=ASK
    )
    assert "x-pluggably-token-estimate" not in counted.headers
    assert anthropic_sim.requests[-1].path == "/v1/messages/count_tokens"
    message = await claude.client.messages.create(
        model=CLAUDE, max_tokens=64, system="Be brief.", tools=[WEATHER], messages=ASK
    )
    assert (await counted.parse()).input_tokens == message.usage.input_tokens


# The bundled model: its own tokenizer.


@pytest.fixture
async def gemma(tmp_path: Path, database_url: str, gemma_gguf: Path) -> AsyncIterator[Surface]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = gemma_app(tmp_path, database_url, gemma_gguf)
    async with running(app), sdk(app) as client, client_for(app, timeout=60) as http:
        yield Surface(app, client, http)


@pytest.mark.slow
async def test_counting_tokens_for_a_local_model_loads_it_and_counts_with_its_tokenizer(
    gemma: Surface,
) -> None:
    status = await gemma.http.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)
    assert status.json()["runtime_status"] == "unloaded"
    counted = await gemma.client.messages.count_tokens(model=GEMMA, messages=FRANCE)
    status = await gemma.http.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)
    assert status.json()["runtime_status"] == "loaded"
    # "User: The capital of France is\nAssistant:" as Gemma's tokenizer cuts it, with BOS.
    assert counted.input_tokens == 11


@pytest.mark.slow
async def test_counting_tokens_for_a_local_model_is_its_prompts_exact_size(
    gemma: Surface,
) -> None:
    body: dict[str, Any] = {"model": GEMMA, "system": "Answer briefly.", "messages": FRANCE}
    counted = await gemma.client.messages.with_raw_response.count_tokens(**body)
    message = await gemma.client.messages.create(**body, max_tokens=1, extra_body=GREEDY)
    assert "x-pluggably-token-estimate" not in counted.headers
    assert (await counted.parse()).input_tokens == message.usage.input_tokens


USE = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": ARGUMENTS}
PIXEL = {"type": "base64", "media_type": "image/png", "data": PNG}


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        pytest.param(
            [{"role": "user", "content": [USE]}],
            "tool_use blocks are only accepted in assistant messages",
            id="tool-use-from-the-user",
        ),
        pytest.param(
            [
                *ASK,
                {"role": "assistant", "content": [USE]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": [{"type": "image", "source": PIXEL}],
                        }
                    ],
                },
            ],
            "Images in tool_result blocks are not supported here",
            id="image-in-a-tool-result",
        ),
        pytest.param(
            [
                *ASK,
                {"role": "assistant", "content": [USE]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": [
                                {"type": "document", "source": {"type": "text", "data": "x"}}
                            ],
                        }
                    ],
                },
            ],
            r"messages.2: Value error, document blocks are not supported here; "
            r"send image, text blocks \(",
            id="document-in-a-tool-result",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "search_result", "source": "s"}]}],
            "search_result blocks are not supported here; send image, redacted_thinking, "
            "text, thinking, tool_result, tool_use blocks",
            id="an-unknown-block",
        ),
    ],
)
async def test_a_misplaced_block_is_an_invalid_request(
    gpt: Surface, messages: list[Any], match: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=match):
        await gpt.client.messages.create(
            model=GPT, max_tokens=8, tools=[WEATHER], messages=messages
        )


async def test_redacted_thinking_is_accepted_and_left_out(
    gpt: Surface, openai_sim: OpenAISim
) -> None:
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": [redacted, {"type": "text", "text": "Sunny."}]},
        {"role": "user", "content": "Thanks"},
    ]
    await gpt.client.messages.create(model=GPT, max_tokens=8, messages=history)
    assert openai_sim.requests[-1].body["messages"][1] == {"role": "assistant", "content": "Sunny."}


async def test_openapi_documents_count_tokens(gpt: Surface) -> None:
    operation = gpt.app.openapi()["paths"]["/anthropic/v1/messages/count_tokens"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/AnthropicCountTokensRequest"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/AnthropicTokenCount"}
