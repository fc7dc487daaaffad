"""The Gemini simulator's function calling, structured output and thoughts, through the official
google-genai SDK: what it sends is accepted, what the simulator answers parses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest

from tests.fixtures.gemini_sim import GeminiSim, gemini_sim  # noqa: F401

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

THINKER = "gemini-2.5-flash"
PLAIN = "gemini-2.0-flash"
NO_AUTO = types.AutomaticFunctionCallingConfig(disable=True)
THOUGHTS = types.ThinkingConfig(include_thoughts=True)
RESULT = types.Part.from_function_response(name="get_weather", response={"result": "sunny"})


class Forecast(pydantic.BaseModel):
    city: str
    days: list[int] | None = None


def get_weather(city: str, unit: str = "c") -> str:
    """The weather in a city."""
    return "sunny"


def get_time(zone: str) -> str:
    """The time in a zone."""
    return "noon"


@pytest.fixture
def client(gemini_sim: GeminiSim) -> Iterator[Any]:  # noqa: F811
    http_options = types.HttpOptions(
        base_url=gemini_sim.url,
        api_version="v1beta",
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    c = genai.Client(api_key="k", http_options=http_options)
    yield c
    c.close()


def tools_config(**calling: Any) -> types.GenerateContentConfig:
    tool_config = None
    if calling:
        config = types.FunctionCallingConfig(**calling)
        tool_config = types.ToolConfig(function_calling_config=config)
    return types.GenerateContentConfig(
        tools=[get_weather, get_time], automatic_function_calling=NO_AUTO, tool_config=tool_config
    )


def test_offered_functions_get_a_call_to_the_first_with_schema_built_arguments(
    client: Any,
) -> None:
    response = client.models.generate_content(
        model=PLAIN, contents="weather?", config=tools_config()
    )
    assert [(c.name, c.args) for c in response.function_calls] == [
        ("get_weather", {"city": "city-1", "unit": "unit-1"})
    ]
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.function_calls[0].id is None  # the Gemini API gives no call ids


def test_a_named_function_in_any_mode_is_the_one_called(client: Any) -> None:
    config = tools_config(mode="ANY", allowed_function_names=["get_time"])
    response = client.models.generate_content(model=PLAIN, contents="time?", config=config)
    assert [(c.name, c.args) for c in response.function_calls] == [("get_time", {"zone": "zone-1"})]


def test_mode_none_answers_text(client: Any) -> None:
    config = tools_config(mode="NONE")
    response = client.models.generate_content(model=PLAIN, contents="hi", config=config)
    assert response.function_calls is None
    assert response.text == "Echo: hi"


def test_a_streamed_call_comes_whole_in_one_chunk(client: Any) -> None:
    chunks = list(
        client.models.generate_content_stream(model=PLAIN, contents="w", config=tools_config())
    )
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "city-1", "unit": "unit-1"})
    ]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_the_function_response_turn_is_answered_with_its_result(
    gemini_sim: GeminiSim,  # noqa: F811
    client: Any,
) -> None:
    call = types.FunctionCall(name="get_weather", args={"city": "Oslo"})
    contents = [
        types.Content(role="user", parts=[types.Part(text="weather in Oslo?")]),
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="get_weather", response={"result": "sunny"})
            ],
        ),
    ]
    response = client.models.generate_content(model=PLAIN, contents=contents, config=tools_config())
    assert response.text == 'Result: get_weather returned {"result": "sunny"}'
    assert response.function_calls is None
    sent = gemini_sim.requests[-1].body["contents"]
    assert sent[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_response_schema_from_a_pydantic_model_parses(client: Any) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Forecast
    )
    response = client.models.generate_content(model=PLAIN, contents="json", config=config)
    assert response.parsed == Forecast(city="city-1", days=[1])


def test_response_json_schema_answers_an_instance(client: Any) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=Forecast.model_json_schema()
    )
    response = client.models.generate_content(model=PLAIN, contents="json", config=config)
    assert Forecast.model_validate_json(response.text) == Forecast(city="city-1", days=[1])


def test_a_schema_without_the_json_mime_type_is_invalid_argument(client: Any) -> None:
    config = types.GenerateContentConfig(response_json_schema={"type": "object"})
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=PLAIN, contents="x", config=config)
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "response_mime_type must be application/json" in str(caught.value.message)


def test_json_schema_keywords_in_openapi_parameters_are_unknown_names(
    gemini_sim: GeminiSim,  # noqa: F811
) -> None:
    # `parameters` takes Google's OpenAPI subset; full JSON Schema goes in parametersJsonSchema.
    declaration = {"name": "f", "parameters": {"type": "object", "$defs": {}}}
    body = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [declaration]}],
    }
    url = f"{gemini_sim.url}/v1beta/models/{PLAIN}:generateContent"
    response = httpx.post(url, json=body, headers={"x-goog-api-key": "k"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == (
        'Invalid JSON payload received. Unknown name "$defs" at'
        " 'tools[0].function_declarations[0].parameters': Cannot find field."
    )


def test_thoughts_come_first_marked_thought(client: Any) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    response = client.models.generate_content(model=THINKER, contents="hi", config=config)
    parts = response.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, False]
    assert parts[0].text == "**Considering the request** The user said: hi."
    assert response.text == "Echo: hi"  # the SDK's text leaves thoughts out
    assert response.usage_metadata.thoughts_token_count == 7


def test_thinking_config_on_a_model_that_does_not_think_is_invalid_argument(client: Any) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=PLAIN, contents="hi", config=config)
    assert (caught.value.code, caught.value.message) == (400, "thinking_config is not supported.")


def test_a_thinking_models_call_is_signed_and_the_signature_must_come_back_unchanged(
    client: Any,
) -> None:
    response = client.models.generate_content(model=THINKER, contents="w", config=tools_config())
    signed = response.candidates[0].content
    assert signed.parts[0].thought_signature
    result = types.Part.from_function_response(name="get_weather", response={"result": "ok"})
    follow_up = [types.Content(role="user", parts=[types.Part(text="w")]), signed]
    answer = client.models.generate_content(
        model=THINKER,
        contents=[*follow_up, types.Content(role="user", parts=[result])],
        config=tools_config(),
    )
    assert answer.text == 'Result: get_weather returned {"result": "ok"}'
    signed.parts[0].thought_signature = b"forged"
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=THINKER, contents=follow_up, config=tools_config())
    assert (caught.value.code, caught.value.message) == (400, "Corrupted thought signature.")
