"""The Python client ``pluggably.client`` over HTTP: the async client against the app in
process (ASGI transport), the sync client against a real ``pluggably serve``; the
OpenAI simulator answers generation, the loopback hub downloads."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.client import (
    AsyncClient,
    AuthError,
    Client,
    Complete,
    ForbiddenError,
    ModelSelected,
    NotFoundError,
    RateLimitedError,
    SessionClosedError,
    StatusChanged,
    StreamError,
    TextDelta,
    ToolCallDelta,
    ValidationError,
    acollect,
    collect,
    routes,
)
from pluggably.client.client import NAMESPACES
from pluggably.generation.schemas import GenerateResponse
from tests.conftest import ADMIN_KEY, PASSWORD, make_settings, running
from tests.downloads.test_downloads import hub_settings, seed_hub
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app, serve_with

MODEL = "openai:gpt-4o-mini"
COMPAT_PREFIXES = ("/openai/", "/anthropic/", "/api/")  # for the vendors' own SDKs
METHODS = {"get", "post", "put", "patch", "delete"}


@asynccontextmanager
async def client_of(app: FastAPI, **auth: str) -> AsyncIterator[AsyncClient]:
    """An admin ``AsyncClient`` of the running ``app``, in process."""
    async with running(app):
        transport = httpx.ASGITransport(
            app=app, raise_app_exceptions=False, client=("127.0.0.1", 50000)
        )
        credentials = auth or {"api_key": ADMIN_KEY}
        async with AsyncClient("http://testserver", transport=transport, **credentials) as client:
            yield client


def test_the_client_imports_none_of_the_server_machinery() -> None:
    """Its schemas live apart from the routes: a script that imports the client does
    not load the web framework, the database layer or the hub client."""
    code = (
        "import sys, pluggably.client; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(run.stdout.split())
    assert loaded & {"fastapi", "starlette", "sqlalchemy", "alembic", "huggingface_hub"} == set()


def test_the_client_covers_every_native_route(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"))
    served = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in METHODS
        and not path.startswith(COMPAT_PREFIXES)
        and path != "/"  # Ollama's "Ollama is running"
        and not path.startswith("/ui/")  # the web console's own session, for browsers
        and not item[method].get("deprecated")  # kept for older clients only
    }
    covered = {(route.method, route.path) for route in routes()}
    assert covered - served == set(), "the client calls routes the server does not have"
    assert served - covered == set(), "routes the client does not cover"
    with Client("http://127.0.0.1:1") as client:
        for name, namespace in NAMESPACES.items():
            assert type(getattr(client, name)) is namespace


async def test_generate_json_and_typed_stream(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    async with client_of(gen_app(tmp_path, database_url, openai_sim)) as client:
        answer = await client.generate("hello there", model=MODEL)
        assert isinstance(answer, GenerateResponse)
        assert answer.output.text == "Echo: hello there"
        assert (answer.model, answer.provider, answer.finish_reason) == (MODEL, "openai", "stop")
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 3

        events = [e async for e in client.generate_stream("hello there", model=MODEL)]
        assert isinstance(events[0], ModelSelected)
        assert (events[0].model, events[0].provider, events[0].fallback_used) == (
            MODEL,
            "openai",
            False,
        )
        deltas = events[1:-1]
        assert len(deltas) >= 2  # incremental, not the answer in one piece
        assert all(isinstance(e, TextDelta) for e in deltas)
        assert "".join(e.text for e in deltas if isinstance(e, TextDelta)) == "Echo: hello there"
        complete = events[-1]
        assert isinstance(complete, Complete)
        assert complete.response.request_id == events[0].request_id
        assert complete.response.output.text is None  # the text came as deltas
        assert complete.response.finish_reason == "stop"

        collected = await acollect(client.generate_stream("again", model=MODEL))
        assert collected.output.text == "Echo: again"

        # The request records, and the polling helper.
        details = await client.requests.get(answer.request_id)
        assert details.status == "completed"
        assert details.result is not None
        status = await client.requests.status(answer.request_id)
        assert (status.status, status.model) == ("completed", MODEL)
        assert await client.wait_for(answer) is answer
        waited = await client.wait_for(answer.request_id, poll_s=0.01, max_wait_s=5)
        assert waited.output.text == "Echo: hello there"
        assert [e async for e in client.requests.events(answer.request_id)] == [
            StatusChanged(request_id=answer.request_id, status="completed")
        ]
        cancel = await client.requests.cancel(answer.request_id)
        assert (cancel.cancelled, cancel.status) == (False, "completed")

        # The list, newest first, paged by its cursor (GET /v1/requests).
        listed = await client.requests.list(status="completed", model_id=MODEL)
        ids = [r.request_id for r in listed.requests]
        assert len(ids) == 3
        assert ids[-1] == answer.request_id
        first = await client.requests.list(limit=2)
        assert [r.request_id for r in first.requests] == ids[:2]
        assert first.next_cursor is not None
        rest = await client.requests.list(limit=2, cursor=first.next_cursor)
        assert [r.request_id for r in rest.requests] == ids[2:]
        assert rest.next_cursor is None


async def test_a_streamed_tool_call_is_typed_and_collected_like_the_json_answer(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    async with client_of(gen_app(tmp_path, database_url, openai_sim)) as client:
        answer = await client.generate("Weather?", model=MODEL, tools=[weather])
        assert answer.finish_reason == "tool_calls"
        assert [c.function.name for c in answer.output.tool_calls] == ["get_weather"]
        events = [e async for e in client.generate_stream("Weather?", model=MODEL, tools=[weather])]
        pieces = [e for e in events if isinstance(e, ToolCallDelta)]
        assert len(pieces) >= 2  # the arguments come in pieces
        assert (pieces[0].index, pieces[0].name) == (0, "get_weather")
        assert all(p.name is None and p.id is None for p in pieces[1:])
        assert not [e for e in events if isinstance(e, TextDelta)]
        collected = await acollect(client.generate_stream("Weather?", model=MODEL, tools=[weather]))
        assert collected.finish_reason == "tool_calls"
        streamed = [c.model_dump() for c in collected.output.tool_calls]
        assert streamed == [c.model_dump() for c in answer.output.tool_calls]


async def test_errors_are_typed_exceptions(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    async with client_of(gen_app(tmp_path, database_url, openai_sim)) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.models.get("acme/nothing-here")
        assert (missing.value.code, missing.value.status) == ("model_not_found", 404)
        assert missing.value.request_id

        with pytest.raises(AuthError) as anonymous:
            await client.with_auth().users.me()
        assert (anonymous.value.code, anonymous.value.status) == ("unauthorized", 401)

        with pytest.raises(ValidationError) as invalid:
            await client.models.list(limit=0)
        assert invalid.value.code == "validation_error"
        assert any("limit" in d["loc"] for d in invalid.value.details)

        openai_sim.fail_next(status=429, retry_after=7)
        with pytest.raises(RateLimitedError) as limited:
            await client.generate("x", model=MODEL)
        assert (limited.value.code, limited.value.status, limited.value.retry_after) == (
            "rate_limited",
            429,
            7,
        )
        assert "openai" in limited.value.message

        # In a stream the failure is an event; collect() raises it.
        openai_sim.fail_next(status=429, retry_after=7)
        events = [e async for e in client.generate_stream("x", model=MODEL)]
        assert isinstance(events[-1], StreamError)
        assert events[-1].code == "rate_limited"
        openai_sim.fail_next(status=429, retry_after=7)
        with pytest.raises(RateLimitedError):
            await acollect(client.generate_stream("x", model=MODEL))


async def test_session_handle_flow(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", lambda body: f"answer {len(body['messages'])}")
    async with client_of(gen_app(tmp_path, database_url, openai_sim)) as client:
        async with await client.session(title="Chat", system_prompt="Be brief.") as chat:
            first = await chat.generate("I am Zed.", model=MODEL)
            assert isinstance(first, GenerateResponse)
            assert (first.session_id, first.output.text) == (chat.id, "answer 2")
            second = await chat.generate("Who am I?", model=MODEL)
            assert isinstance(second, GenerateResponse)
            sent = openai_sim.requests_to("/v1/chat/completions")[-1].body["messages"]
            assert [m["content"] for m in sent] == [
                "Be brief.",
                "I am Zed.",
                "answer 2",
                "Who am I?",
            ]
            messages = await chat.messages()
            assert [(m.role, m.content) for m in messages] == [
                ("user", "I am Zed."),
                ("assistant", "answer 2"),
                ("user", "Who am I?"),
                ("assistant", "answer 4"),
            ]
            streamed = await acollect(chat.stream("And now?", model=MODEL))
            assert streamed.output.text == "answer 6"
            assert (await chat.messages())[-1].content == "answer 6"  # stored in full

            openai_sim.set_reply("gpt-4o-mini", "a better answer")
            again = await chat.regenerate()
            assert isinstance(again, GenerateResponse)
            after = await chat.messages()
            assert len(after) == 6  # replaced, not appended
            assert after[-1].content == "a better answer"

            info = await chat.reset()
            assert (info.message_count, info.title, info.system_prompt) == (0, "Chat", "Be brief.")
            assert await chat.messages() == []
            renamed = await chat.update(title="Renamed")
            assert renamed.title == "Renamed"
        # Leaving the block closed it: its history is kept, it takes no new turns.
        with pytest.raises(SessionClosedError) as closed:
            await chat.generate("more", model=MODEL)
        assert (closed.value.code, closed.value.status) == ("session_closed", 400)
        assert (await client.sessions.get(chat.id)).status == "closed"
        listed = await client.sessions.list(status="closed")
        assert [s.id for s in listed.sessions] == [chat.id]

        other = await client.session()
        patched = await client.sessions.patch(other.id, system_prompt="Terse.")
        assert patched.system_prompt == "Terse."
        attached = await client.session(session_id=other.id)
        assert attached.id == other.id
        purged = await client.sessions.close(other.id, purge=True)
        assert (purged.id, purged.status, purged.system_prompt) == (other.id, "closed", "Terse.")
        with pytest.raises(NotFoundError) as gone:
            await attached.get()
        assert gone.value.code == "session_not_found"


async def test_accounts_tokens_and_operations(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    async with client_of(gen_app(tmp_path, database_url, openai_sim)) as admin:
        assert (await admin.health()).status == "ok"
        assert (await admin.ready()).status == "ready"
        assert (await admin.version()).version
        assert "pluggably" in await admin.metrics()
        assert "openai" in (await admin.features()).providers
        assert "openai" in {p.name for p in (await admin.providers(discover=False)).providers}
        assert "model_selection" in await admin.schema_index()
        models = await admin.models.list(provider="openai")
        assert MODEL in {m.id for m in models.models}
        assert (await admin.models.loaded()).models == []

        invite = await admin.invites.create(expires_days=1)
        assert [i.id for i in (await admin.invites.list()).invites] == [invite.info.id]
        profile = await admin.users.register(
            username="zed", password=PASSWORD, invite_token=invite.token
        )
        login = await admin.users.login(username="zed", password=PASSWORD)
        user = admin.with_auth(token=login.token)
        me = await user.users.me()
        assert (me.id, me.username, me.role) == (profile.id, "zed", "user")
        assert (await user.users.update_me(display_name="Zed")).display_name == "Zed"
        with pytest.raises(ForbiddenError) as forbidden:
            await user.invites.list()
        assert (forbidden.value.code, forbidden.value.status) == ("forbidden", 403)

        created = await user.tokens.create("ci", scopes=["read"])
        reader = admin.with_auth(api_key=created.token)
        assert (await reader.users.me()).id == me.id
        with pytest.raises(ForbiddenError):
            await reader.sessions.create(title="needs write")
        assert [t.id for t in await user.tokens.list()] == [created.info.id]
        revoked = await user.tokens.revoke(created.info.id)
        assert (revoked.id, revoked.revoked) == (created.info.id, True)
        with pytest.raises(AuthError):
            await reader.users.me()

        stored = await user.provider_keys.put("groq", api_key="gsk_client_key_0001")
        assert stored.masked_key == "gsk…0001"
        listed = await user.provider_keys.list()
        assert [k.provider for k in listed] == ["groq"]
        removed = await user.provider_keys.delete("groq")
        assert (removed.provider, removed.masked_key, removed.deleted) == ("groq", "gsk…0001", True)
        assert await user.provider_keys.list() == []

        changed = await user.users.change_password(
            current_password=PASSWORD, new_password="another-horse-staple"
        )
        assert changed.status == "password_changed"
        assert (await user.users.logout()).status == "logged_out"
        with pytest.raises(AuthError):
            await user.users.me()

        spare = await admin.invites.create()
        await admin.invites.revoke(spare.info.id)
        statuses = {i.id: i.status for i in (await admin.invites.list()).invites}
        assert statuses == {invite.info.id: "used", spare.info.id: "revoked"}


async def test_images_come_as_artifacts_and_a_stream_of_json(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim, inline_output_bytes=0)
    image: dict[str, Any] = {
        "model": "openai:dall-e-2",
        "modality": "image",
        "parameters": {"width": 256, "height": 256},
    }
    async with client_of(app) as client:
        picture = await client.generate("a red square", **image)
        assert isinstance(picture, GenerateResponse)
        artifact = picture.output.artifacts[0]
        data = await client.with_auth().artifacts.download(artifact)  # the link is the credential
        assert data.startswith(b"\x89PNG")
        assert len(data) == artifact.size_bytes
        with pytest.raises(ForbiddenError):
            await client.artifacts.download(artifact.id, expires=2_000_000_000, sig="0" * 64)
        # stream is ignored for images: the JSON answer, as events.
        events = [e async for e in client.generate_stream("a red square", **image)]
        assert [type(e) for e in events] == [ModelSelected, Complete]


async def test_download_progress_iterates_job_events(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    async with client_of(create_app(hub_settings(tmp_path, database_url, hf_hub))) as client:
        found = await client.models.search("tiny")
        assert "acme/tiny-GGUF" in {r.id for r in found.results}
        job = await client.models.download("acme/tiny-GGUF", filename="tiny-Q4_K_M.gguf")
        progress = [j async for j in client.jobs.progress(job.job_id)]
        assert {j.job_id for j in progress} == {job.job_id}
        assert progress[-1].status == "completed"
        assert [j.bytes_done for j in progress] == sorted(j.bytes_done for j in progress)
        assert (await client.jobs.get(job.job_id)).status == "completed"
        assert [j.job_id for j in (await client.jobs.list()).jobs] == [job.job_id]

        info = await client.models.get(job.model_id)
        assert (info.format, info.provider) == ("gguf", "local")
        assert (await client.models.status(job.model_id)).runtime_status == "unloaded"
        assert job.model_id in {m.id for m in (await client.storage.usage()).models}
        assert (await client.storage.cleanup(dry_run=True)).dry_run is True
        await client.models.delete(job.model_id)
        with pytest.raises(NotFoundError):
            await client.models.get(job.model_id)


@pytest.mark.slow
def test_sync_client_against_a_live_server(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    from tests.serving.test_serve import stop_server

    proc, log_path = serve_with(tmp_path, free_port, openai_sim)
    try:
        with Client(f"http://127.0.0.1:{free_port}", api_key=ADMIN_KEY) as client:
            assert client.health().status == "ok"
            answer = client.generate("hello there", model=MODEL)
            assert isinstance(answer, GenerateResponse)
            assert answer.output.text == "Echo: hello there"

            events = list(client.generate_stream("hello there", model=MODEL))
            assert isinstance(events[0], ModelSelected)
            assert all(isinstance(e, TextDelta) for e in events[1:-1])
            assert len(events) >= 4
            assert isinstance(events[-1], Complete)
            assert collect(iter(events)).output.text == "Echo: hello there"

            with client.session(title="Live") as chat:
                assert isinstance(chat.generate("I am Zed.", model=MODEL), GenerateResponse)
                assert collect(chat.stream("Who am I?", model=MODEL)).output.text == (
                    "Echo: Who am I?"
                )
                assert [m.role for m in chat.messages()] == ["user", "assistant"] * 2
                assert chat.reset().message_count == 0
            with pytest.raises(SessionClosedError):
                chat.generate("more", model=MODEL)
            with pytest.raises(NotFoundError):
                client.sessions.get("ses_nope")

            # Leaving a stream early closes it, which cancels the request on the server.
            openai_sim.token_delay_s = 0.2
            stream = client.generate_stream("one two three four five six seven", model=MODEL)
            selected = next(stream)
            assert isinstance(selected, ModelSelected)
            assert isinstance(next(stream), TextDelta)
            stream.close()
            deadline = time.monotonic() + 10
            while client.requests.status(selected.request_id).status != "cancelled":
                assert time.monotonic() < deadline, "the request was not cancelled"
                time.sleep(0.05)
    finally:
        openai_sim.token_delay_s = 0.0
        stop_server(proc, log_path)
