"""What /v1/generate checks of tools, tool choice, response format and tool turns before
anything runs, and how a candidate that cannot do what a request asks is skipped: never
called, its reason in ``selection.attempts``, a 400 naming every reason when no
candidate can."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pluggably.app import create_app
from pluggably.generation.schemas import ChatMessage, Output
from pluggably.tool_call_schema import FunctionCall, ToolCallSpec
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    generate,
    make_settings,
    running,
)
from tests.fixtures.openai_sim import OpenAISim, make_png

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.fixtures.tiny_models import build_tiny_transformers

ADMIN = {"X-API-Key": ADMIN_KEY}
LLM = "local/llm"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_transformers(tmp_path_factory.mktemp("tiny-llm") / "llm")


@pytest.fixture
async def client(
    tmp_path: Path, database_url: str, tiny_llm: Path, openai_sim: OpenAISim
) -> AsyncIterator[httpx.AsyncClient]:
    """The tiny transformers model as local/llm, falling back to the OpenAI simulator."""
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    shutil.copytree(tiny_llm, models / "llm")
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": openai_sim.base_url, "api_key": "sk-server-key-0001"}},
        server_keys_allowed=["@admins"],
        fallbacks={LLM: ["openai:gpt-4o-mini"]},
    )
    app = create_app(settings)
    async with running(app), client_for(app, timeout=60) as c:
        yield c


def _locs(response: httpx.Response) -> list[list[Any]]:
    return [d["loc"] for d in assert_envelope(response, 422, "validation_error")["details"]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice names 'nope', which is not in tools",
        ),
        ({"tool_choice": "required"}, "tool_choice 'required' needs tools"),
        ({"tools": [WEATHER, WEATHER]}, "each function needs its own name"),
        ({"response_format": {"type": "json_schema"}}, "json_schema needs json_schema"),
    ],
)
async def test_inconsistent_tool_fields_are_422_naming_the_problem(
    client: httpx.AsyncClient, fields: dict[str, Any], message: str
) -> None:
    response = await generate(
        client, ADMIN, model="openai:gpt-4o-mini", input={"prompt": "hi"}, **fields
    )
    body = assert_envelope(response, 422, "validation_error")
    assert message in body["message"] or any(message in d["msg"] for d in body["details"])


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "tool", "content": "18C"}, "tool_call_id"),
        ({"role": "user", "content": "x", "tool_call_id": "call_1"}, "tool_call_id"),
        (
            {
                "role": "user",
                "content": "x",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "tool_calls",
        ),
    ],
)
async def test_misplaced_tool_fields_on_messages_are_422(
    client: httpx.AsyncClient, message: dict[str, Any], field: str
) -> None:
    response = await generate(
        client,
        ADMIN,
        model="openai:gpt-4o-mini",
        input={"messages": [{"role": "user", "content": "hi"}, message]},
    )
    body = assert_envelope(response, 422, "validation_error")
    assert field in body["details"][0]["msg"]
    assert _locs(response)[0][:4] == ["body", "input", "messages", 1]


async def test_a_model_that_cannot_constrain_json_is_skipped_for_the_fallback(
    client: httpx.AsyncClient, openai_sim: OpenAISim
) -> None:
    response = await generate(
        client,
        ADMIN,
        model=LLM,
        input={"prompt": "Give me a JSON object"},
        response_format={"type": "json_object"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["selection"]["selected_model"] == "openai:gpt-4o-mini"
    skipped, answered = body["selection"]["attempts"]
    assert skipped == {
        "model": f"local:{LLM}",
        "provider": "local",
        "error_code": "feature_not_supported",
        "reason": f"'{LLM}' (transformers) cannot constrain its output to JSON here; "
        "use a GGUF model",
    }
    assert answered["error_code"] is None
    assert body["selection"]["fallback_used"] is True
    assert body["selection"]["fallback_reason"].startswith(f"local:{LLM} was skipped: ")
    # Never called: the model was not even loaded.
    loaded = (await client.get("/v1/models/loaded", headers=ADMIN)).json()
    assert LLM not in [m["model_id"] for m in loaded["models"]]
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    assert sent["response_format"] == {"type": "json_object"}


async def test_no_capable_candidate_is_a_400_naming_each_reason(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(
        client,
        ADMIN,
        model=LLM,
        selection_mode="model",
        input={"prompt": "What is the weather in Paris?"},
        tools=[WEATHER],
        tool_choice="required",
    )
    body = assert_envelope(response, 400, "feature_not_supported")
    assert f"'{LLM}' (transformers) cannot call tools here; use a GGUF model" in (body["message"])


async def test_tool_choice_none_asks_nothing_of_the_model(client: httpx.AsyncClient) -> None:
    response = await generate(
        client,
        ADMIN,
        model=LLM,
        input={"prompt": "Hello"},
        tools=[WEATHER],
        tool_choice="none",
        parameters={"max_tokens": 3},
    )
    assert response.status_code == 200, response.text
    assert response.json()["selection"]["selected_model"] == f"local:{LLM}"


async def test_reasoning_on_a_local_model_is_ignored_with_a_warning(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(
        client,
        ADMIN,
        model=LLM,
        input={"prompt": "Hello"},
        reasoning={"effort": "high"},
        parameters={"max_tokens": 3},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["warnings"] == [f"'reasoning' was ignored: local:{LLM} does not reason."]
    assert body["output"]["reasoning"] is None


def test_a_tool_name_a_model_wrote_outside_the_declared_pattern_is_kept() -> None:
    """Declared tools follow the pattern; a model's answer (and the turn sent back) may
    not, and is never lost to it."""
    call = ToolCallSpec(id="c1", function=FunctionCall(name="get weather", arguments="{}"))
    assert Output(tool_calls=[call]).tool_calls[0].function.name == "get weather"
    turn = ChatMessage(role="assistant", content=None, tool_calls=[call])
    assert turn.tool_calls == [call]


async def test_a_text_only_model_is_skipped_for_a_request_with_images(
    client: httpx.AsyncClient, openai_sim: OpenAISim
) -> None:
    png = base64.b64encode(make_png(8, 8, "x")).decode()
    response = await generate(
        client, ADMIN, model=LLM, input={"prompt": "What is this?", "images": [png]}
    )
    assert response.status_code == 200, response.text
    skipped = response.json()["selection"]["attempts"][0]
    assert skipped["reason"] == f"'{LLM}' reads text only; send the request without images"
    sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
    assert sent["messages"][-1]["content"][1]["type"] == "image_url"


async def test_images_for_a_text_only_model_alone_are_a_400_naming_it(
    client: httpx.AsyncClient,
) -> None:
    png = base64.b64encode(make_png(8, 8, "x")).decode()
    response = await generate(
        client,
        ADMIN,
        model=LLM,
        selection_mode="model",
        input={"prompt": "What is this?", "images": [png]},
    )
    body = assert_envelope(response, 400, "feature_not_supported")
    assert f"'{LLM}' reads text only" in body["message"]
