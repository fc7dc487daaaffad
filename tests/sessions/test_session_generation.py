"""Generation inside sessions: the context a model receives, the turns stored,
regenerate, failures that leave history intact, ownership, restarts. Against the
OpenAI simulator (whose recorded requests show exactly what the model received) and
the real bundled Gemma GGUF."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    deltas,
    make_settings,
    new_user,
    running,
)
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"


async def _session(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    response = await client.post("/v1/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _turn(
    client: httpx.AsyncClient, headers: dict[str, str], session_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/v1/sessions/{session_id}/generate", json=body, headers=headers)


async def _messages(client: httpx.AsyncClient, headers: dict[str, str], sid: str) -> list[Any]:
    response = await client.get(f"/v1/sessions/{sid}", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def _sent(sim: OpenAISim) -> list[dict[str, Any]]:
    """The messages of the last chat request the simulator received."""
    return list(sim.requests_to("/v1/chat/completions")[-1].body["messages"])


async def test_turns_carry_the_history_and_are_stored(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "Nice to meet you, Zed.")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client, ADMIN, system_prompt="Be brief.")
        first = await _turn(
            client, ADMIN, sid, model=MODEL, input={"prompt": "I am Zed."}, state_tokens={"k": 1}
        )
        assert first.status_code == 200, first.text
        assert first.json()["session_id"] == sid
        assert first.json()["state_tokens"] == {"k": 1}
        assert _sent(openai_sim) == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "I am Zed."},
        ]
        openai_sim.set_reply("gpt-4o-mini", "You are Zed.")
        second = await client.post(
            "/v1/generate",
            json={"model": MODEL, "session_id": sid, "input": {"prompt": "Who am I?"}},
            headers=ADMIN,
        )
        assert second.status_code == 200, second.text
        assert second.json()["state_tokens"] == {"k": 1}  # kept with the session
        assert _sent(openai_sim) == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "I am Zed."},
            {"role": "assistant", "content": "Nice to meet you, Zed."},
            {"role": "user", "content": "Who am I?"},
        ]
        stored = await _messages(client, ADMIN, sid)
        assert [(m["role"], m["content"]) for m in stored] == [
            ("user", "I am Zed."),
            ("assistant", "Nice to meet you, Zed."),
            ("user", "Who am I?"),
            ("assistant", "You are Zed."),
        ]
        assert stored[1]["model"] == MODEL
        assert stored[1]["provider"] == "openai"
        assert len({m["id"] for m in stored}) == 4
        assert all(m["created_at"].endswith(("Z", "+00:00")) for m in stored)
        summary = (await client.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()
        assert summary["title"] == "I am Zed."  # from the first prompt
        assert summary["message_count"] == 4
        assert summary["state_tokens"] == {"k": 1}


async def test_a_streamed_turn_is_stored_with_its_full_text(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "one two three four five six")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client, ADMIN)
        async with client.stream(
            "POST",
            f"/v1/sessions/{sid}/generate",
            json={"model": MODEL, "input": {"prompt": "count"}, "stream": True},
            headers=ADMIN,
        ) as response:
            assert response.status_code == 200
            frames = [
                json.loads(line[6:])
                async for line in response.aiter_lines()
                if line.startswith("data: {")
            ]
        pieces = deltas(frames)
        assert len(pieces) > 3
        stored = await _messages(client, ADMIN, sid)
        assert stored[-1]["content"] == "".join(pieces) == "one two three four five six"
        assert stored[-1]["role"] == "assistant"


async def test_a_stream_cancelled_while_its_answer_is_stored_keeps_it_once_and_completed(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The upstream has finished and the gateway is writing the answer out (the turn,
    then the record): a cancel then (POST …/cancel, or the client leaving, as a browser
    does on a reload) comes too late. The answer was stored a second time, as a
    cancelled copy, and its request ended 'cancelled'."""
    openai_sim.set_reply("gpt-4o-mini", "one two three")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        generation = app.state.container.generation
        writing, release = asyncio.Event(), asyncio.Event()
        finish = generation.outcomes.finish

        async def held(plan: Any, **result: Any) -> None:
            if result.get("status") == "completed":  # the turn is stored; the record is next
                writing.set()
                await release.wait()
            await finish(plan, **result)

        generation.outcomes.finish = held
        sid = await _session(client, ADMIN)
        body = {"model": MODEL, "input": {"prompt": "count"}, "stream": True}
        call = asyncio.create_task(_turn(client, ADMIN, sid, **body))
        await asyncio.wait_for(writing.wait(), 10)
        [live] = generation.live.all()
        cancel = asyncio.create_task(
            client.post(f"/v1/requests/{live.request_id}/cancel", headers=ADMIN)
        )
        while not live.cancel_requested:
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.wait_for(asyncio.gather(call, cancel), 10)

        stored = await _messages(client, ADMIN, sid)
        assert [(m["role"], m["content"]) for m in stored] == [
            ("user", "count"),
            ("assistant", "one two three"),
        ]
        record = await client.get(f"/v1/requests/{live.request_id}/status", headers=ADMIN)
        assert record.json()["status"] == "completed"


async def test_regenerate_replace_append_and_failure_keeps_history(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client, ADMIN)
        empty = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=ADMIN)
        assert_envelope(empty, 400, "invalid_parameter")
        openai_sim.set_reply("gpt-4o-mini", "first answer")
        await _turn(client, ADMIN, sid, model=MODEL, input={"prompt": "question"})

        # The upstream fails: the history stays exactly as it was.
        before = await _messages(client, ADMIN, sid)
        openai_sim.fail_next(status=500)
        failed = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=ADMIN)
        assert failed.status_code == 503
        assert await _messages(client, ADMIN, sid) == before

        openai_sim.set_reply("gpt-4o-mini", "second answer")
        replaced = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=ADMIN)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["model"] == MODEL  # the model that answered before
        assert _sent(openai_sim) == [{"role": "user", "content": "question"}]
        after = await _messages(client, ADMIN, sid)
        assert [(m["role"], m["content"]) for m in after] == [
            ("user", "question"),
            ("assistant", "second answer"),
        ]
        assert after[0]["id"] == before[0]["id"]  # the user's message was never touched

        openai_sim.set_reply("gpt-4o-mini", "third answer")
        appended = await client.post(
            f"/v1/sessions/{sid}/regenerate",
            json={"mode": "append", "parameters": {"temperature": 0}},
            headers=ADMIN,
        )
        assert appended.status_code == 200
        assert [m["content"] for m in await _messages(client, ADMIN, sid)] == [
            "question",
            "second answer",
            "third answer",
        ]
        bad = await client.post(
            f"/v1/sessions/{sid}/regenerate", json={"mode": "sideways"}, headers=ADMIN
        )
        assert_envelope(bad, 422, "validation_error")

        await client.delete(f"/v1/sessions/{sid}", headers=ADMIN)
        closed = await _turn(client, ADMIN, sid, model=MODEL, input={"prompt": "more"})
        assert_envelope(closed, 400, "session_closed")
        closed = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=ADMIN)
        assert_envelope(closed, 400, "session_closed")


async def test_sessions_belong_to_their_user_and_survive_restarts(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        owner = await new_user(client, "owner")
        other = await new_user(client, "other")
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-owner-0001"},
            headers=owner,
        )
        sid = await _session(client, owner)
        openai_sim.set_reply("gpt-4o-mini", "kept")
        assert (
            await _turn(client, owner, sid, model=MODEL, input={"prompt": "hi"})
        ).status_code == 200
        for response in (
            await _turn(client, other, sid, model=MODEL, input={"prompt": "hi"}),
            await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=other),
            await client.post(
                "/v1/generate",
                json={"model": MODEL, "session_id": sid, "input": {"prompt": "x"}},
                headers=other,
            ),
        ):
            assert_envelope(response, 404, "session_not_found")
        token = owner
    restarted = gen_app(tmp_path, database_url, openai_sim)
    async with running(restarted), client_for(restarted) as client:
        assert [m["content"] for m in await _messages(client, token, sid)] == ["hi", "kept"]
        openai_sim.set_reply("gpt-4o-mini", "still here")
        again = await _turn(client, token, sid, model=MODEL, input={"prompt": "again"})
        assert again.status_code == 200
        assert [m["content"] for m in _sent(openai_sim)] == ["hi", "kept", "again"]


async def test_image_turns_keep_their_artifacts(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        sid = await _session(client, ADMIN)
        answer = await _turn(
            client, ADMIN, sid, model="openai:dall-e-2", input={"prompt": "a red square"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"]["images"]  # small: inline too
        stored = await _messages(client, ADMIN, sid)
        assert stored[-1]["modality"] == "image"
        (artifact,) = stored[-1]["artifacts"]
        assert artifact["type"] == "image"
        download = await client.get(artifact["url"])
        assert download.status_code == 200
        assert download.content.startswith(b"\x89PNG")


def _local_app(tmp_path: Path, database_url: str, gemma_gguf: Path, **extra: Any) -> FastAPI:
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not (models / "gemma.gguf").exists():
        os.link(gemma_gguf, models / "gemma.gguf")
    return create_app(make_settings(tmp_path, database_url, **extra))


@pytest.mark.slow
async def test_local_model_sees_earlier_turns_and_long_history_is_trimmed(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    """The real local model: the second turn's prompt holds the first turn."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    app = _local_app(tmp_path, database_url, gemma_gguf, local_context_tokens=512)
    async with running(app), client_for(app, timeout=60) as client:
        sid = await _session(client, ADMIN)
        params = {"max_tokens": 8, "temperature": 0}
        first = await _turn(
            client,
            ADMIN,
            sid,
            model="local/gemma",
            input={"prompt": "My name is Zed."},
            parameters=params,
        )
        assert first.status_code == 200, first.text
        one = first.json()["usage"]
        second = await _turn(
            client,
            ADMIN,
            sid,
            model="local/gemma",
            input={"prompt": "What is my name?"},
            parameters=params,
        )
        two = second.json()["usage"]
        # The second prompt holds the first turn (prompt and answer) and the new question.
        assert two["prompt_tokens"] > one["prompt_tokens"] + one["completion_tokens"]

        # Forty long turns cannot fit 512 tokens: the oldest are dropped, the answer comes.
        container = app.state.container
        async with container.db.session() as session:
            chat = await container.sessions.for_generation(session, container.admin_user_id, sid)
            for i in range(40):
                role = "user" if i % 2 == 0 else "assistant"
                await container.sessions.append(
                    session, chat, role=role, content=f"turn {i} " + "words " * 40
                )
        third = await _turn(
            client,
            ADMIN,
            sid,
            model="local/gemma",
            input={"prompt": "Still there?"},
            parameters=params,
        )
        assert third.status_code == 200, third.text
        assert third.json()["usage"]["prompt_tokens"] <= 512 - 8
