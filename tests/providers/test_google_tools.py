"""Tool calling, structured output and reasoning through POST /v1/generate and the Gemini
adapter, against the Gemini simulator: what reaches Gemini (functionDeclarations,
functionCallingConfig, functionCall/functionResponse turns, responseJsonSchema, thinkingConfig)
and what comes back (output.tool_calls, finish_reason tool_calls, output.reasoning), as JSON and
as streamed frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from pluggably.messages import Message, ToolCall
from pluggably.providers import google_request
from pluggably.providers.base import (
    ProviderCall,
    ReasoningDelta,
    StreamEnd,
    ToolCallDelta,
)
from pluggably.providers.google_request import generate_body
from tests.conftest import assert_envelope, generate, sse_frames
from tests.fixtures.gemini_sim import GeminiSim
from tests.providers.test_google_provider import (
    ADMIN,
    CALL,
    GENERATE,
    MODEL,
    google_app,
    last_to,
    mock_provider,
)

THINKER = "google:gemini-2.5-flash"
THINKER_GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
# As pydantic writes it: $defs and $ref, which only parametersJsonSchema takes.
WEATHER_PARAMETERS = {
    "$defs": {"Unit": {"enum": ["c", "f"], "type": "string"}},
    "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
    "required": ["city", "unit"],
    "type": "object",
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    },
]
WEATHER_CALL = {
    "id": "call_0",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "city-1", "unit": "c"}'},
}


def delta_frames(frames: list[Any]) -> list[dict[str, Any]]:
    return [f["choices"][0]["delta"] for f in frames if isinstance(f, dict) and "choices" in f]


async def test_tools_answer_with_output_tool_calls_and_finish_reason_tool_calls(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "weather?"}, tools=TOOLS
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["tool_calls"] == [WEATHER_CALL]
        assert body["output"]["text"] == ""
        assert body["finish_reason"] == "tool_calls"
        sent = last_to(gemini_sim, GENERATE).body
        assert sent["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "The weather in a city.",
                        "parametersJsonSchema": WEATHER_PARAMETERS,
                    },
                    {
                        "name": "get_time",
                        "parametersJsonSchema": TOOLS[1]["function"]["parameters"],
                    },
                ]
            }
        ]
        assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


async def test_a_named_tool_choice_is_mode_any_with_that_function_allowed(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        choice = {"type": "function", "function": {"name": "get_time"}}
        response = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "t"}, tools=TOOLS, tool_choice=choice
        )
        assert response.json()["output"]["tool_calls"] == [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"zone": "zone-1"}'},
            }
        ]
        sent = last_to(gemini_sim, GENERATE).body["toolConfig"]
        assert sent == {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
        }


async def test_tool_choice_none_declares_the_tools_and_gets_text(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "hi"}, tools=TOOLS, tool_choice="none"
        )
        body = response.json()
        assert (body["output"]["text"], body["output"]["tool_calls"]) == ("Echo: hi", [])
        assert body["finish_reason"] == "stop"
        sent = last_to(gemini_sim, GENERATE).body["toolConfig"]
        assert sent == {"functionCallingConfig": {"mode": "NONE"}}


async def test_a_streamed_call_is_one_tool_call_frame_with_id_name_and_arguments(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        frames = await sse_frames(client, ADMIN, model=MODEL, input={"prompt": "w"}, tools=TOOLS)
        assert delta_frames(frames) == [
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_0",
                        "type": "function",
                        "function": {
                            "arguments": '{"city": "city-1", "unit": "c"}',
                            "name": "get_weather",
                        },
                    }
                ]
            }
        ]
        complete = next(f for f in frames if isinstance(f, dict) and f.get("event") == "complete")
        assert complete["finish_reason"] == "tool_calls"
        assert frames[-1] == "[DONE]"
        assert last_to(gemini_sim, STREAM).body["tools"][0]["functionDeclarations"][0]["name"] == (
            "get_weather"
        )


async def test_tool_turns_reach_gemini_as_function_call_and_function_response_parts(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    time_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'},
    }
    messages = [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL, time_call]},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
    ]
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client, ADMIN, model=MODEL, input={"messages": messages}, tools=TOOLS
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["text"] == (
            'Result: get_weather returned {"result": {"sky": "clear"}};'
            ' get_time returned {"result": "noon"}'
        )
        assert body["finish_reason"] == "stop"
        assert last_to(gemini_sim, GENERATE).body["contents"] == [
            {"role": "user", "parts": [{"text": "weather and time?"}]},
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "city-1", "unit": "c"},
                        }
                    },
                    {"functionCall": {"name": "get_time", "args": {"zone": "UTC"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"result": {"sky": "clear"}},
                        }
                    },
                    {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                ],
            },
        ]


async def test_a_tool_message_answering_no_call_is_invalid_parameter(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_9", "content": "x"},
    ]
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(client, ADMIN, model=MODEL, input={"messages": messages})
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert detail["message"] == (
            "The tool message for call 'call_9' answers no tool call of an earlier assistant"
            " message; Gemini needs the name of the function it answers."
        )
        assert [r for r in gemini_sim.requests if r.path == GENERATE] == []


async def test_json_schema_output_is_json_of_the_schema(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    schema = {"name": "weather", "schema": WEATHER_PARAMETERS}
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"prompt": "json"},
            response_format={"type": "json_schema", "json_schema": schema},
        )
        assert response.status_code == 200, response.text
        assert json.loads(response.json()["output"]["text"]) == {"city": "city-1", "unit": "c"}
        assert last_to(gemini_sim, GENERATE).body["generationConfig"] == {
            "responseMimeType": "application/json",
            "responseJsonSchema": WEATHER_PARAMETERS,
        }


async def test_json_object_output_sets_only_the_mime_type(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client,
            ADMIN,
            model=MODEL,
            input={"prompt": "j"},
            response_format={"type": "json_object"},
        )
        assert json.loads(response.json()["output"]["text"]) == {"text": "Echo: j"}
        assert last_to(gemini_sim, GENERATE).body["generationConfig"] == {
            "responseMimeType": "application/json"
        }


async def test_reasoning_asks_for_thoughts_and_returns_them_as_output_reasoning(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client, ADMIN, model=THINKER, input={"prompt": "hi"}, reasoning={"effort": "low"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"]["reasoning"] == ("**Considering the request** The user said: hi.")
        assert body["output"]["text"] == "Echo: hi"
        # Thoughts are billed as output: 7 thought tokens and 2 answer tokens.
        assert body["usage"]["completion_tokens"] == 9
        assert last_to(gemini_sim, THINKER_GENERATE).body["generationConfig"] == {
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}
        }


async def test_streamed_reasoning_frames_come_before_the_text(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        frames = await sse_frames(
            client, ADMIN, model=THINKER, input={"prompt": "hi"}, reasoning={"max_tokens": 64}
        )
        assert delta_frames(frames) == [
            {"reasoning": "**Considering the request** The user said: hi."},
            {"content": "Echo: "},
            {"content": "hi"},
        ]
        sent = [r for r in gemini_sim.requests if "streamGenerateContent" in r.path][-1].body
        assert sent["generationConfig"]["thinkingConfig"] == {
            "includeThoughts": True,
            "thinkingBudget": 64,
        }


async def test_reasoning_on_a_model_that_does_not_think_sends_no_thinking_config(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(
            client, ADMIN, model=MODEL, input={"prompt": "hi"}, reasoning={"effort": "high"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["output"]["reasoning"] is None
        assert response.json()["warnings"] == [
            "'reasoning' was ignored: gemini-2.0-flash does not think (Gemini 2.5 and later do)."
        ]
        assert "generationConfig" not in last_to(gemini_sim, GENERATE).body


async def test_a_thinking_models_signed_call_goes_back_with_its_signature(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        first = await generate(client, ADMIN, model=THINKER, input={"prompt": "w"}, tools=TOOLS)
        output = first.json()["output"]
        signature = output["reasoning_signature"]
        # Marked as Gemini's: another vendor's turn never receives it.
        assert signature.startswith("google:")
        messages = [
            {"role": "user", "content": "w"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": output["tool_calls"],
                "reasoning_signature": signature,
            },
            {"role": "tool", "tool_call_id": output["tool_calls"][0]["id"], "content": "sunny"},
        ]
        second = await generate(
            client, ADMIN, model=THINKER, input={"messages": messages}, tools=TOOLS
        )
        # The simulator answers a forged or altered signature with a 400.
        assert second.status_code == 200, second.text
        assert second.json()["output"]["text"] == 'Result: get_weather returned {"result": "sunny"}'
        model_turn = last_to(gemini_sim, THINKER_GENERATE).body["contents"][1]
        assert model_turn["parts"][0]["thoughtSignature"] == signature.removeprefix("google:")


async def test_another_vendors_signature_is_not_sent_to_gemini(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        first = await generate(client, ADMIN, model=THINKER, input={"prompt": "w"}, tools=TOOLS)
        output = first.json()["output"]
        messages = [
            {"role": "user", "content": "w"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": output["tool_calls"],
                "reasoning": "thought elsewhere",
                "reasoning_signature": "anthropic:EqQBCkgIARABGAIiQL",
            },
            {"role": "tool", "tool_call_id": output["tool_calls"][0]["id"], "content": "sunny"},
        ]
        await generate(client, ADMIN, model=THINKER, input={"messages": messages}, tools=TOOLS)
        model_turn = last_to(gemini_sim, THINKER_GENERATE).body["contents"][1]
        assert all("thoughtSignature" not in part for part in model_turn["parts"])


async def test_gemini_given_call_ids_are_kept_and_sent_back() -> None:
    calls = [
        {"functionCall": {"id": "fc-a", "name": "get_time", "args": {"zone": "UTC"}}},
        {"functionCall": {"id": "fc-b", "name": "get_time", "args": {"zone": "CET"}}},
    ]
    answer = {
        "candidates": [{"content": {"parts": calls, "role": "model"}, "finishReason": "STOP"}]
    }
    call = ProviderCall("gemini-2.5-flash", [Message("user", "t")])
    async with mock_provider(lambda: web.json_response(answer)) as provider:
        completion = await provider.complete(call, {"api_key": "k"})
    assert completion.tool_calls == [
        ToolCall("fc-a", "get_time", '{"zone": "UTC"}'),
        ToolCall("fc-b", "get_time", '{"zone": "CET"}'),
    ]
    assert completion.finish_reason == "tool_calls"
    turns = [
        Message("user", "t"),
        Message("assistant", "", tool_calls=tuple(completion.tool_calls)),
        Message("tool", "noon", tool_call_id="fc-a"),
    ]
    sent = generate_body(ProviderCall("gemini-2.5-flash", turns))
    assert sent["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_time", "args": {"zone": "UTC"}, "id": "fc-a"}},
                {"functionCall": {"name": "get_time", "args": {"zone": "CET"}, "id": "fc-b"}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_time",
                        "response": {"result": "noon"},
                        "id": "fc-a",
                    }
                }
            ],
        },
    ]


async def test_several_calls_in_one_stream_frame_are_one_tool_call_delta_each() -> None:
    parts = [
        {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
    ]
    frame = {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]}
    body = f"data: {json.dumps(frame)}\r\n\r\n"
    async with mock_provider(
        lambda: web.Response(text=body, content_type="text/event-stream")
    ) as provider:
        items = [item async for item in provider.stream(CALL, {"api_key": "k"})]
    assert items == [
        ToolCallDelta(0, "call_0", "get_time", "{}"),
        ToolCallDelta(1, "call_1", "get_weather", '{"city": "Oslo"}'),
        ReasoningDelta("", signature="google:c2ln"),
        StreamEnd("tool_calls", None),
    ]


async def test_tool_call_arguments_that_are_not_an_object_are_invalid_parameter(
    tmp_path: Path, database_url: str, gemini_sim: GeminiSim
) -> None:
    bad = {**WEATHER_CALL, "function": {"name": "get_weather", "arguments": "[1]"}}
    messages = [
        {"role": "user", "content": "w"},
        {"role": "assistant", "content": "", "tool_calls": [bad]},
        {"role": "tool", "tool_call_id": "call_0", "content": "x"},
    ]
    async with google_app(tmp_path, database_url, gemini_sim) as (_, client):
        response = await generate(client, ADMIN, model=MODEL, input={"messages": messages})
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert detail["message"] == (
            "The arguments of tool call 'call_0' (get_weather) are not a JSON object; Gemini"
            " takes a function call's arguments only as an object."
        )


def test_a_gemini_3_call_made_elsewhere_carries_the_documented_unsigned_marker() -> None:
    """Gemini 3 refuses a function call without a thought signature in the current turn;
    Google documents this value for calls that come from elsewhere."""
    call = ToolCall("call_0", "get_time", "{}")
    messages = [
        Message("user", "time?"),
        Message("assistant", "", tool_calls=(call,), reasoning_signature="anthropic:x"),
        Message("tool", "noon", tool_call_id="call_0"),
    ]
    three = google_request.contents(messages, "gemini-3-pro-preview")
    assert three[1]["parts"][0]["thoughtSignature"] == google_request.UNSIGNED
    older = google_request.contents(messages, "gemini-2.5-flash")
    assert "thoughtSignature" not in older[1]["parts"][0]
