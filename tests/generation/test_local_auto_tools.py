"""``tool_choice: auto`` on a GGUF whose chat template takes tools, through
/v1/generate: a copy of the bundled Gemma given a Qwen-style template (discovery flags
it as able to call tools), shown two earlier calls in the conversation so that, greedy,
it writes the next one in Qwen's ``<tool_call>`` format, which the runtime parses; a
plain question still streams as text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pluggably.app import create_app
from pluggably.registry.scan import scan
from tests.conftest import ADMIN_KEY, client_for, generate, make_settings, running, sse_frames
from tests.fixtures.gguf_template import with_chat_template
from tests.runtimes.test_tool_prompts import QWEN

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "local/qwenish"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
# Gemma's vocabulary has no <|im_end|> token: the template's end of turn is a stop.
GREEDY = {"temperature": 0, "max_tokens": 40, "stop": ["<|im_end|>"]}


def earlier_call(n: int, city: str, sky: str) -> list[dict[str, Any]]:
    call = {
        "id": f"call_{n}",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
    }
    return [
        {"role": "user", "content": f"What's the weather in {city}?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"call_{n}", "content": json.dumps({"sky": sky})},
        {"role": "assistant", "content": f"It is {sky} in {city}."},
    ]


PARIS = {
    "messages": [
        *earlier_call(1, "Rome", "sunny"),
        *earlier_call(2, "Oslo", "snowy"),
        {"role": "user", "content": "What's the weather in Paris?"},
    ]
}


@pytest.fixture(scope="session")
def qwenish_gguf(tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path) -> Path:
    target = tmp_path_factory.mktemp("qwenish") / "qwenish.gguf"
    return with_chat_template(gemma_gguf, target, QWEN)


@pytest.fixture
async def client(
    tmp_path: Path, database_url: str, qwenish_gguf: Path
) -> AsyncIterator[httpx.AsyncClient]:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    (models / "qwenish.gguf").hardlink_to(qwenish_gguf)
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app, timeout=120) as c:
        yield c


async def test_a_call_written_in_the_templates_format_is_returned_as_a_tool_call(
    client: httpx.AsyncClient,
) -> None:
    r = await generate(client, ADMIN, model=MODEL, input=PARIS, tools=TOOLS, parameters=GREEDY)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["finish_reason"] == "tool_calls"
    assert answer["output"]["text"] == ""
    (call,) = answer["output"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert call["id"].startswith("call_")


async def test_a_streamed_call_comes_as_tool_call_deltas_and_no_text(
    client: httpx.AsyncClient,
) -> None:
    frames = await sse_frames(
        client, ADMIN, model=MODEL, input=PARIS, tools=TOOLS, parameters=GREEDY
    )
    pieces = [f["choices"][0]["delta"] for f in frames if isinstance(f, dict) and "choices" in f]
    assert [set(p) for p in pieces] == [{"tool_calls"}, {"tool_calls"}]
    first, second = (p["tool_calls"][0] for p in pieces)
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert second == {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}
    assert frames[-2]["finish_reason"] == "tool_calls"


async def test_an_answer_without_a_call_streams_as_text(client: httpx.AsyncClient) -> None:
    frames = await sse_frames(
        client,
        ADMIN,
        model=MODEL,
        input={"prompt": "Hello! Say hi."},
        tools=TOOLS,
        parameters=GREEDY,
    )
    pieces = [f["choices"][0]["delta"] for f in frames if isinstance(f, dict) and "choices" in f]
    assert len(pieces) > 2  # token by token
    assert "".join(p["content"] for p in pieces) == "Hello! Say hi."
    assert frames[-2]["finish_reason"] == "stop"


def test_discovery_flags_a_gguf_whose_template_takes_tools(
    tmp_path: Path, gemma_gguf: Path, qwenish_gguf: Path
) -> None:
    (tmp_path / "gemma.gguf").hardlink_to(gemma_gguf)
    (tmp_path / "qwenish.gguf").hardlink_to(qwenish_gguf)
    found = {f.name: f.capabilities for f in scan(tmp_path)}
    assert found["qwenish"]["tool_calling"] is True
    assert "tool_calling" not in found["gemma"]


async def test_the_model_listing_shows_which_models_choose_tools(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/v1/models/{MODEL}", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["capabilities"]["tool_calling"] is True
