"""Tool calls, tool results and reasoning in sessions: stored as messages, shown by
GET /v1/sessions/{id}, replayed in the next turn's context (the OpenAI simulator
records what the model received, and refuses a tool result whose call it never saw),
trimmed together, and kept across the migration that added them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, running
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import OpenAISim
from tests.fixtures.schema_rollback import undo_after_0010
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def _session(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/sessions", json={}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _turn(client: httpx.AsyncClient, sid: str, **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    return await client.post(f"/v1/sessions/{sid}/generate", json=body, headers=ADMIN)


async def _messages(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/sessions/{sid}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def _sent(sim: OpenAISim) -> list[dict[str, Any]]:
    """The messages of the last chat request the simulator received."""
    return list(sim.requests_to("/v1/chat/completions")[-1].body["messages"])


async def _called(client: httpx.AsyncClient, sid: str, prompt: str) -> list[dict[str, Any]]:
    """A turn whose answer calls get_weather; its calls."""
    response = await _turn(client, sid, input={"prompt": prompt}, tools=[WEATHER])
    assert response.status_code == 200, response.text
    assert response.json()["finish_reason"] == "tool_calls"
    calls = response.json()["output"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    return list(calls)


def _result(call: dict[str, Any], content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call["id"], "content": content}


async def test_an_answer_that_calls_a_tool_is_stored_with_its_calls(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        calls = await _called(client, sid, "Weather in Paris?")
        stored = await _messages(client, sid)
        assert [(m["role"], m["content"], m["tool_calls"]) for m in stored] == [
            ("user", "Weather in Paris?", None),
            ("assistant", "", calls),
        ]
        assert calls[0]["type"] == "function"
        assert json.loads(calls[0]["function"]["arguments"]).keys() == {"city"}
        assert [m["tool_call_id"] for m in stored] == [None, None]


async def test_a_tool_result_alone_continues_the_session_with_the_whole_exchange_replayed(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        calls = await _called(client, sid, "Weather in Paris?")
        answer = await _turn(
            client, sid, input={"messages": [_result(calls[0], "18 C, sunny")]}, tools=[WEATHER]
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["finish_reason"] == "stop"
        assert answer.json()["output"]["text"] == "The tool said: 18 C, sunny"
        assert _sent(openai_sim) == [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18 C, sunny"},
        ]
        stored = await _messages(client, sid)
        assert [(m["role"], m["content"], m["tool_call_id"]) for m in stored] == [
            ("user", "Weather in Paris?", None),
            ("assistant", "", None),
            ("tool", "18 C, sunny", calls[0]["id"]),
            ("assistant", "The tool said: 18 C, sunny", None),
        ]


async def test_the_next_user_turn_replays_the_tool_exchange_in_order(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        calls = await _called(client, sid, "Weather in Paris?")
        await _turn(client, sid, input={"messages": [_result(calls[0], "18 C")]})
        openai_sim.set_reply("gpt-4o-mini", "You are welcome.")
        thanks = await _turn(client, sid, input={"prompt": "Thanks!"})
        assert thanks.status_code == 200, thanks.text
        assert _sent(openai_sim) == [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18 C"},
            {"role": "assistant", "content": "The tool said: 18 C"},
            {"role": "user", "content": "Thanks!"},
        ]


async def test_a_request_carrying_its_own_tool_exchange_stores_every_turn(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    call = {
        "id": "call_client_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    sent = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_client_1", "content": "-3 C"},
    ]
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        response = await _turn(client, sid, input={"messages": sent})
        assert response.status_code == 200, response.text
        assert _sent(openai_sim) == sent
        stored = await _messages(client, sid)
        assert [(m["role"], m["content"], m["tool_calls"], m["tool_call_id"]) for m in stored] == [
            ("user", "Weather in Oslo?", None, None),
            ("assistant", "", [call], None),
            ("tool", "-3 C", None, "call_client_1"),
            ("assistant", "The tool said: -3 C", None, None),
        ]


async def test_tool_results_for_a_call_the_session_did_not_make_are_refused(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        calls = await _called(client, sid, "Weather in Paris?")
        before = await _messages(client, sid)
        stray = {"role": "tool", "tool_call_id": "call_unknown", "content": "18 C"}
        refused = await _turn(client, sid, input={"messages": [stray]})
        message = assert_envelope(refused, 400, "invalid_parameter")["message"]
        assert "call_unknown" in message
        assert calls[0]["id"] in message
        assert await _messages(client, sid) == before
        assert len(openai_sim.requests_to("/v1/chat/completions")) == 1


async def test_tool_results_alone_are_refused_after_an_answer_without_calls(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        assert (await _turn(client, sid, input={"prompt": "hello"})).status_code == 200
        stray = {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
        refused = await _turn(client, sid, input={"messages": [stray]})
        assert_envelope(refused, 400, "invalid_parameter")
        assert len(await _messages(client, sid)) == 2


async def test_trimming_drops_a_tool_call_together_with_its_result(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The oldest exchange (a call and its long result) no longer fits beside a large
    answer reserve: it goes whole, and the upstream never sees an orphaned result."""
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        calls = await _called(client, sid, "Fetch the report.")
        openai_sim.set_reply("gpt-4o-mini", "Got it.")
        long_result = "data " * 42_000  # about 70,000 tokens estimated
        fetched = await _turn(client, sid, input={"messages": [_result(calls[0], long_result)]})
        assert fetched.status_code == 200, fetched.text
        openai_sim.set_reply("gpt-4o-mini", "Fine.")
        assert (await _turn(client, sid, input={"prompt": "Thanks."})).status_code == 200
        # gpt-4o-mini's window is 128,000 tokens; 64,000 reserved leave no room for the result.
        last = await _turn(
            client, sid, input={"prompt": "Anything else?"}, parameters={"max_tokens": 64_000}
        )
        assert last.status_code == 200, last.text
        assert _sent(openai_sim) == [
            {"role": "user", "content": "Thanks."},
            {"role": "assistant", "content": "Fine."},
            {"role": "user", "content": "Anything else?"},
        ]
        assert len(await _messages(client, sid)) == 8  # trimming leaves the history whole


async def test_regenerate_replace_takes_the_tool_exchange_with_the_old_answer(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        calls = await _called(client, sid, "Weather in Paris?")
        await _turn(client, sid, input={"messages": [_result(calls[0], "18 C")]})
        openai_sim.set_reply("gpt-4o-mini", "Probably mild.")
        again = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=ADMIN)
        assert again.status_code == 200, again.text
        assert _sent(openai_sim) == [{"role": "user", "content": "Weather in Paris?"}]
        stored = await _messages(client, sid)
        assert [(m["role"], m["content"]) for m in stored] == [
            ("user", "Weather in Paris?"),
            ("assistant", "Probably mild."),
        ]


async def test_a_tool_call_counts_its_arguments_in_the_stored_size(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    call = {
        "id": "call_size",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
    }
    sent = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_size", "content": "5 C"},
    ]
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        assert (await _turn(client, sid, input={"messages": sent})).status_code == 200
    sizes = await _stored_sizes(database_url)
    assert sizes[:3] == [
        ("user", 128 + len(b"Weather?")),
        ("assistant", 128 + len(json.dumps([call]).encode())),
        ("tool", 128 + len(b"5 C") + len(b"call_size")),
    ]


async def _stored_sizes(database_url: str) -> list[tuple[str, int]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT role, size_bytes FROM messages ORDER BY seq")
            return [(r[0], r[1]) for r in rows]
    finally:
        await engine.dispose()


async def test_messages_stored_before_the_tool_columns_keep_their_sizes_and_continue(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """Migration 0010 on a database with messages: they read back without tool fields,
    keep their sizes, and the session goes on with a tool exchange."""
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        assert (await _turn(client, sid, input={"prompt": "héllo ✓"})).status_code == 200
        before = await _messages(client, sid)
    sizes = await _stored_sizes(database_url)

    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        for column in ("tool_calls", "tool_call_id", "reasoning", "reasoning_signature"):
            await conn.exec_driver_sql(f"ALTER TABLE messages DROP COLUMN {column}")
        await undo_after_0010(conn)  # 0011 and later: made again
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0009'")
    await engine.dispose()

    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        assert await _messages(client, sid) == before
        assert await _stored_sizes(database_url) == sizes
        calls = await _called(client, sid, "Weather in Paris?")
        follow = await _turn(client, sid, input={"messages": [_result(calls[0], "18 C")]})
        assert follow.status_code == 200, follow.text
        assert [m["role"] for m in await _messages(client, sid)] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant",
        ]


async def test_a_streamed_tool_call_is_stored_with_its_assembled_calls(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        body = {"model": MODEL, "input": {"prompt": "Weather?"}, "tools": [WEATHER], "stream": True}
        async with client.stream(
            "POST", f"/v1/sessions/{sid}/generate", json=body, headers=ADMIN
        ) as response:
            assert response.status_code == 200
            frames = [
                json.loads(line[6:])
                async for line in response.aiter_lines()
                if line.startswith("data: {")
            ]
        complete = next(f for f in frames if f.get("event") == "complete")
        assert complete["finish_reason"] == "tool_calls"
        expected = openai_sim.tool_calls_for(
            {"tools": [WEATHER], "messages": [{"role": "user", "content": "Weather?"}]}
        )
        stored = await _messages(client, sid)
        assert [(m["role"], m["tool_calls"]) for m in stored] == [
            ("user", None),
            ("assistant", expected),
        ]


async def test_an_answer_with_reasoning_is_stored_and_shown_with_it(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> None:
    sim = make_openai_sim(["deepseek-reasoner"])
    app = gen_app(tmp_path, database_url, sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        model = "openai:deepseek-reasoner"
        first = await _turn(client, sid, model=model, input={"prompt": "Hi"})
        assert first.status_code == 200, first.text
        reasoning = first.json()["output"]["reasoning"]
        assert reasoning == "The user wrote: Hi. I should answer."
        stored = await _messages(client, sid)
        assert [(m["role"], m["reasoning"]) for m in stored] == [
            ("user", None),
            ("assistant", reasoning),
        ]
        # Replayed to the adapter, which leaves it off the wire (DeepSeek refuses it).
        assert (await _turn(client, sid, model=model, input={"prompt": "Again"})).status_code == 200
        assert _sent(sim)[1] == {"role": "assistant", "content": stored[1]["content"]}


async def test_signed_thinking_is_replayed_to_anthropic_with_the_tool_result(
    tmp_path: Path, database_url: str
) -> None:
    """Anthropic continues a thinking turn only with its signed thinking block sent
    back: the session keeps the signature and replays it (the simulator checks it)."""
    with serving(AnthropicSim(), "the Anthropic simulator") as sim:
        settings = make_settings(
            tmp_path,
            database_url,
            providers={"anthropic": {"base_url": sim.url, "api_key": "sk-ant-server-0001"}},
            server_keys_allowed=["@admins"],
        )
        app = create_app(settings)
        ask: dict[str, Any] = {
            "model": "anthropic:claude-sonnet-4-6",
            "tools": [WEATHER],
            "reasoning": {"effort": "low"},
        }
        async with running(app), client_for(app) as client:
            sid = await _session(client)
            first = await _turn(client, sid, input={"prompt": "Weather in Paris?"}, **ask)
            assert first.status_code == 200, first.text
            output = first.json()["output"]
            [made] = output["tool_calls"]
            stored = await _messages(client, sid)
            assert [(m["role"], m["reasoning"]) for m in stored] == [
                ("user", None),
                ("assistant", output["reasoning"]),
            ]
            result = _result(made, "sunny")
            follow = await _turn(client, sid, input={"messages": [result]}, **ask)
            assert follow.status_code == 200, follow.text
            assert follow.json()["output"]["text"] == "Tool results: sunny"
            body = [r for r in sim.requests if r.path == "/v1/messages"][-1].body
            assert body["messages"][1]["content"][0] == {
                "type": "thinking",
                "thinking": output["reasoning"],
                "signature": output["reasoning_signature"].removeprefix("anthropic:"),
            }
            assert body["messages"][2]["content"][0]["tool_use_id"] == made["id"]


async def test_a_new_prompt_after_an_unanswered_call_leaves_the_call_out_of_the_context(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The client ignored the call and asked something else: the upstream would refuse
    a call without its result, so the replay leaves it out (the history keeps it)."""
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        await _called(client, sid, "Weather in Paris?")
        openai_sim.set_reply("gpt-4o-mini", "Hello.")
        hello = await _turn(client, sid, input={"prompt": "Never mind. Hi!"})
        assert hello.status_code == 200, hello.text
        assert _sent(openai_sim) == [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "user", "content": "Never mind. Hi!"},
        ]
        assert [m["role"] for m in await _messages(client, sid)] == [
            "user",
            "assistant",
            "user",
            "assistant",
        ]


async def test_regenerate_takes_tools_and_can_answer_with_a_call(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        first = await _turn(client, sid, input={"prompt": "Weather in Oslo?"})
        assert first.json()["finish_reason"] == "stop"
        again = await client.post(
            f"/v1/sessions/{sid}/regenerate",
            json={"tools": [WEATHER], "tool_choice": "required"},
            headers=ADMIN,
        )
        assert again.status_code == 200, again.text
        assert again.json()["finish_reason"] == "tool_calls"
        sent = openai_sim.requests_to("/v1/chat/completions")[-1].body
        assert sent["tool_choice"] == "required"
        assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
        stored = await _messages(client, sid)
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[-1]["tool_calls"] == again.json()["output"]["tool_calls"]


async def test_regenerate_refuses_a_tool_choice_naming_no_tool(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        await _turn(client, sid, input={"prompt": "Weather in Oslo?"})
        response = await client.post(
            f"/v1/sessions/{sid}/regenerate",
            json={"tool_choice": {"type": "function", "function": {"name": "nope"}}},
            headers=ADMIN,
        )
        assert_envelope(response, 422, "validation_error")


async def test_regenerate_leaves_out_a_call_nobody_answered(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The simulator, like OpenAI, refuses a tool call without its result."""
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client)
        await _called(client, sid, "Weather in Paris?")
        moved_on = await _turn(client, sid, input={"prompt": "Never mind. Hello!"})
        assert moved_on.status_code == 200, moved_on.text
        again = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=ADMIN)
        assert again.status_code == 200, again.text
        assert [m["role"] for m in _sent(openai_sim)] == ["user", "user"]
