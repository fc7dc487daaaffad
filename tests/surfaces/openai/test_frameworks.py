"""Agent frameworks on the OpenAI surface (/openai/v1), each at its pinned release and
with its defaults, against the OpenAI simulator through the gateway in process:
langchain-openai (`bind_tools`, `with_structured_output`) and a pydantic-ai agent whose
tool runs. The simulator calls the first offered tool while a user spoke last, quotes a
tool result when one came last, and fills a json_schema with the schema's instance
(tests/fixtures/schema_instance.py), so every answer below is predictable.
instructor runs in a venv of its own: test_instructor.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field
from pydantic_ai import Agent, NativeOutput, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.conftest import ADMIN_KEY
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app
from tests.surfaces.openai.test_openai_compat import BASE, sdk, serving

MODEL = "openai:gpt-4o-mini"


class GetWeather(BaseModel):
    """The weather in a city now."""

    city: str = Field(description="The city's name")
    unit: Literal["celsius", "fahrenheit"]


class Forecast(BaseModel):
    city: str
    degrees: int
    sky: Literal["clear", "cloudy"]


FORECAST = Forecast(city="city-1", degrees=1, sky="clear")  # the simulator's instance


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with serving(app):
        yield app


def chat_model(app: FastAPI) -> ChatOpenAI:
    """langchain-openai's chat model over the gateway in process (its async httpx client
    carries the app)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return ChatOpenAI(
        model=MODEL,
        base_url=BASE,
        api_key=ADMIN_KEY,
        max_retries=0,
        http_async_client=httpx.AsyncClient(transport=transport, timeout=60),
    )


def agent_model(app: FastAPI) -> OpenAIChatModel:
    """pydantic-ai's chat-completions model over the gateway in process."""
    return OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=sdk(app)))


def chats(sim: OpenAISim) -> list[dict[str, Any]]:
    return [r.body for r in sim.requests_to("/v1/chat/completions")]


async def test_langchain_bind_tools_returns_a_tool_call_with_parsed_arguments(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    answer = await chat_model(app).bind_tools([GetWeather]).ainvoke("Weather in Paris?")
    assert isinstance(answer, AIMessage)
    assert answer.content == ""
    assert [(c["name"], c["args"]) for c in answer.tool_calls] == [
        ("GetWeather", {"city": "city-1", "unit": "celsius"})
    ]
    assert answer.tool_calls[0]["id"].startswith("call_")
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    sent = chats(openai_sim)[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["GetWeather"]
    assert sent["tools"][0]["function"]["description"] == "The weather in a city now."


async def test_langchain_answers_a_tool_result_turn(app: FastAPI, openai_sim: OpenAISim) -> None:
    model = chat_model(app).bind_tools([GetWeather])
    ask = HumanMessage("Weather in Paris?")
    call = await model.ainvoke([ask])
    assert isinstance(call, AIMessage)
    result = ToolMessage("18 degrees, clear", tool_call_id=call.tool_calls[0]["id"])
    answer = await model.ainvoke([ask, call, result])
    assert answer.content == "The tool said: 18 degrees, clear"
    turns = chats(openai_sim)[-1]["messages"]
    assert [m["role"] for m in turns] == ["user", "assistant", "tool"]
    assert turns[1]["tool_calls"][0]["id"] == call.tool_calls[0]["id"]
    assert turns[2]["tool_call_id"] == call.tool_calls[0]["id"]


async def test_langchain_streams_a_tool_call_assembled_from_its_chunks(app: FastAPI) -> None:
    model = chat_model(app).bind_tools([GetWeather])
    chunks = [chunk async for chunk in model.astream("Weather in Paris?")]
    assert len(chunks) > 2  # the arguments came in pieces
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [
        ("GetWeather", {"city": "city-1", "unit": "celsius"})
    ]


async def test_langchain_with_structured_output_returns_the_model_instance(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    structured = chat_model(app).with_structured_output(Forecast)
    forecast = await structured.ainvoke("The forecast for Paris?")
    assert forecast == FORECAST
    fmt = chats(openai_sim)[-1]["response_format"]
    assert fmt["type"] == "json_schema"  # the default method of this release
    assert (fmt["json_schema"]["name"], fmt["json_schema"]["strict"]) == ("Forecast", True)


async def test_langchain_with_structured_output_as_a_function_call(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    structured = chat_model(app).with_structured_output(Forecast, method="function_calling")
    assert await structured.ainvoke("The forecast for Paris?") == FORECAST
    sent = chats(openai_sim)[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Forecast"}}


async def test_a_pydantic_ai_agent_runs_its_tool_and_answers_with_its_result(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    agent = Agent(agent_model(app), instructions="Answer with the weather.")
    ran: list[tuple[str, str]] = []

    @agent.tool
    def weather(ctx: RunContext[None], city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
        """The weather in a city now."""
        ran.append((city, unit))
        return f"18 {unit} and clear in {city}"

    result = await agent.run("What is the weather in Paris?")
    assert ran == [("city-1", "celsius")]
    assert result.output == "The tool said: 18 celsius and clear in city-1"
    first, second = chats(openai_sim)[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["weather"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]


async def test_a_pydantic_ai_agent_with_a_tool_returns_native_structured_output(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    agent = Agent(agent_model(app), output_type=NativeOutput(Forecast))
    ran: list[str] = []

    @agent.tool
    def today(ctx: RunContext[None], city: str) -> str:
        """Today's observations in a city."""
        ran.append(city)
        return "clear"

    result = await agent.run("The forecast for Paris?")
    assert ran == ["city-1"]
    assert result.output == FORECAST
    last = chats(openai_sim)[-1]
    assert last["response_format"]["type"] == "json_schema"
    assert last["messages"][-1]["role"] == "tool"


async def test_a_streamed_pydantic_ai_run_calls_its_tool_and_streams_the_answer(
    app: FastAPI, openai_sim: OpenAISim
) -> None:
    agent = Agent(agent_model(app))
    ran: list[str] = []

    @agent.tool
    def today(ctx: RunContext[None], city: str) -> str:
        """Today's observations in a city."""
        ran.append(city)
        return "clear and calm"

    async with agent.run_stream("How is Paris today?") as run:
        pieces = [piece async for piece in run.stream_text(delta=True, debounce_by=None)]
    assert ran == ["city-1"]
    assert pieces == ["The ", "tool ", "said: ", "clear ", "and ", "calm"]  # as they came
    assert all(body["stream"] is True for body in chats(openai_sim)[-2:])
