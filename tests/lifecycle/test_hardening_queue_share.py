"""Issue #15: a local model's queue is shared fairly between users.

Each user may keep ``max_queue_per_user`` requests waiting for a model; past that share
the user is refused with 429 ``rate_limited`` and ``Retry-After`` while other users are
still queued, and a freed slot goes to the users in turn (round robin), not to whoever
queued most. A stream refused by admission (the caller's share, or the model's whole
queue) is a plain HTTP error with ``Retry-After`` before any 200, on the native route
and on the OpenAI and Anthropic surfaces alike; on those two surfaces (which do not show
queue notices) a request that fails when its turn comes answers its own status too.

Driven over HTTP through the real app, scheduler and local backend; the runtime is a
fake (the scheduler's factory seam) whose generations wait for the test to open a gate,
so the queue's state is exact."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from pluggably.errors import InvalidParameter
from pluggably.lifecycle.limits import SchedulerLimits
from pluggably.lifecycle.scheduler import Scheduler
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    generate,
    new_user,
    running,
    sse_frames,
)
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "local/zz-local"
WAIT_S = 10.0


class Gate:
    """What the fake runtimes share: the prompts in the order their generations started,
    and the gate every generation waits for."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.open = threading.Event()
        self.closing = threading.Event()

    def runtime(self, spec: ModelSpec) -> GatedRuntime:
        return GatedRuntime(self)


class GatedRuntime:
    kind = "fake"
    memory_bytes = 1

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def load(self) -> None:
        pass

    def unload(self) -> None:
        pass

    def stream(self, call: LocalCall, cancel: threading.Event) -> Generator[str, None, LocalResult]:
        prompt = call.messages[-1].text
        self.gate.started.append(prompt)
        if prompt.startswith("too long"):  # llama.cpp's check of the context window
            raise InvalidParameter("The prompt is 5000 tokens; 'zz-local' holds 4096 here.")
        while not (self.gate.open.is_set() or cancel.is_set() or self.gate.closing.is_set()):
            self.gate.open.wait(0.005)
        yield f"answer to {prompt}"
        return LocalResult(text=f"answer to {prompt}", prompt_tokens=1, completion_tokens=1)

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        *_, result = _drain(self.stream(call, cancel))
        return result


def _drain(pieces: Generator[str, None, LocalResult]) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.append(next(pieces))
        except StopIteration as done:
            return [*out, done.value]


def share_app(tmp_path: Path, database_url: str, sim: OpenAISim, **settings: Any) -> FastAPI:
    """An app with one local GGUF model (its runtime replaced by the gated fake)."""
    gguf = tmp_path / "data" / "models" / "zz-local.gguf"
    gguf.parent.mkdir(parents=True, exist_ok=True)
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    return gen_app(tmp_path, database_url, sim, preload_defaults=False, **settings)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, Gate]]:
    gate = Gate()
    async with running(app), client_for(app, timeout=WAIT_S) as client:
        app.state.container.scheduler.factory = gate.runtime
        try:
            yield client, gate
        finally:
            gate.closing.set()


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """The whole answer, within ``WAIT_S`` (a stream that opened and waits in the queue
    would otherwise never end: the in-process transport has no read timeout)."""
    return await asyncio.wait_for(client.post(path, json=body, headers=headers), WAIT_S)


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": {"prompt": prompt}, **extra}


async def until(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def waiting(app: FastAPI) -> int:
    return int(app.state.container.scheduler.admission.depth(MODEL))


async def hold_the_slot(
    client: httpx.AsyncClient, gate: Gate, headers: dict[str, str]
) -> asyncio.Future[httpx.Response]:
    """A request (``holder``) that runs on the model until the gate opens."""
    holder = asyncio.ensure_future(generate(client, headers, **ask("holder", wait=True)))
    await until(lambda: gate.started == ["holder"], "the holder to run")
    return holder


async def failed_records(app: FastAPI) -> list[tuple[str, str | None]]:
    """(status, error code) of every request record that did not succeed."""
    from sqlalchemy import select

    from pluggably.generation.models import RequestRecord

    container = app.state.container
    await container.records.flush()
    async with container.db.session() as session:
        rows = await session.execute(
            select(RequestRecord.status, RequestRecord.error_code).where(
                RequestRecord.status == "failed"
            )
        )
        return [(status, code) for status, code in rows.all()]


def assert_retry_after(response: httpx.Response) -> None:
    assert int(response.headers["retry-after"]) >= 1


async def test_a_user_past_their_share_is_refused_while_another_user_is_still_queued(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = share_app(tmp_path, database_url, openai_sim, max_queue_depth=8, max_queue_per_user=2)
    async with serving(app) as (client, gate):
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        holder = await hold_the_slot(client, gate, alice)
        for prompt in ("a1", "a2"):
            queued = await generate(client, alice, **ask(prompt))
            assert queued.status_code == 202, queued.text
        assert waiting(app) == 2

        refused = await generate(client, alice, **ask("a3"))
        detail = assert_envelope(refused, 429, "rate_limited")
        assert_retry_after(refused)
        assert detail["retry_after"] == int(refused.headers["retry-after"])
        assert "2 requests waiting" in detail["message"]
        assert waiting(app) == 2  # the refusal took no place in the queue

        # Another user still gets a place, ahead of alice's waiting requests (her turn
        # came with the holder).
        bobs = await generate(client, bob, **ask("b1"))
        assert bobs.status_code == 202, bobs.text
        assert bobs.json()["queue_position"] == 1
        # The admin is one more user, with a share of its own.
        admins = await generate(client, ADMIN, **ask("admin1"))
        assert admins.status_code == 202, admins.text

        gate.open.set()
        assert (await holder).status_code == 200
        await until(lambda: len(gate.started) == 5, "every queued request to run")
        for headers, queued in ((bob, bobs), (ADMIN, admins)):
            result = await client.get(queued.json()["result_url"], headers=headers)
            assert result.json()["result"]["output"]["text"].startswith("answer to ")


async def test_streams_past_the_share_are_refused_with_429_before_any_frame(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = share_app(tmp_path, database_url, openai_sim, max_queue_depth=8, max_queue_per_user=1)
    async with serving(app) as (client, gate):
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        holder = await hold_the_slot(client, gate, alice)
        queued = await generate(client, alice, **ask("a1"))
        assert queued.status_code == 202, queued.text

        native = await post(client, "/v1/generate", ask("a2", stream=True), alice)
        assert_envelope(native, 429, "rate_limited")
        assert_retry_after(native)

        chat = {"model": MODEL, "messages": [{"role": "user", "content": "a3"}], "stream": True}
        openai = await post(client, "/openai/v1/chat/completions", chat, alice)
        assert openai.status_code == 429, openai.text
        assert openai.json()["error"]["code"] == "rate_limited"
        assert_retry_after(openai)

        message = {**chat, "max_tokens": 8}
        anthropic = await post(client, "/anthropic/v1/messages", message, alice)
        assert anthropic.status_code == 429, anthropic.text
        assert anthropic.json()["error"]["type"] == "rate_limit_error"
        assert_retry_after(anthropic)
        assert waiting(app) == 1
        assert await failed_records(app) == [("failed", "rate_limited")] * 3

        # Bob's stream is queued (a 200 with queued frames) and served.
        streamed = asyncio.ensure_future(sse_frames(client, bob, **ask("b1")))
        await until(lambda: waiting(app) == 2, "bob's stream to queue")
        gate.open.set()
        frames = await asyncio.wait_for(streamed, WAIT_S)
        assert frames[0]["event"] == "queued"
        assert frames[0]["queue_position"] == 1
        assert [f.get("event") for f in frames[-3:-1]] == [None, "complete"]
        assert frames[-3]["choices"][0]["delta"]["content"] == "answer to b1"
        assert (await holder).status_code == 200
        # Nothing the refusals took is still held: the next request runs at once.
        after = await generate(client, bob, **ask("after"))
        assert after.status_code == 200, after.text


async def test_a_full_queue_refuses_a_native_stream_with_503_before_it_opens(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = share_app(tmp_path, database_url, openai_sim, max_queue_depth=1, max_queue_per_user=1)
    async with serving(app) as (client, gate):
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        holder = await hold_the_slot(client, gate, alice)
        assert (await generate(client, alice, **ask("a1"))).status_code == 202

        refused = await post(client, "/v1/generate", ask("b1", stream=True), bob)
        detail = assert_envelope(refused, 503, "queue_full")
        assert_retry_after(refused)
        assert "1 requests waiting" in detail["message"]
        assert await failed_records(app) == [("failed", "queue_full")]
        gate.open.set()
        assert (await holder).status_code == 200


async def test_a_freed_slot_goes_to_the_waiting_users_in_turn(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = share_app(tmp_path, database_url, openai_sim, max_queue_depth=8, max_queue_per_user=3)
    async with serving(app) as (client, gate):
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        holder = await hold_the_slot(client, gate, alice)
        positions = {}
        for headers, prompt in ((alice, "a1"), (alice, "a2"), (alice, "a3"), (bob, "b1")):
            queued = await generate(client, headers, **ask(prompt))
            assert queued.status_code == 202, queued.text
            positions[prompt] = queued.json()["queue_position"]
        # Bob came last but alice had her turn (the holder): he is next.
        assert positions == {"a1": 1, "a2": 2, "a3": 3, "b1": 1}
        b2 = await generate(client, bob, **ask("b2"))
        assert b2.json()["queue_position"] == 3  # after a1: one each per turn
        gate.open.set()
        assert (await holder).status_code == 200
        await until(lambda: len(gate.started) == 6, "every request to run")
        assert gate.started == ["holder", "b1", "a1", "b2", "a2", "a3"]


async def test_the_default_share_is_a_quarter_of_the_queue(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = share_app(tmp_path, database_url, openai_sim, max_queue_depth=8)
    async with serving(app) as (client, gate):
        alice = await new_user(client, "alice")
        holder = await hold_the_slot(client, gate, alice)
        for prompt in ("a1", "a2"):
            assert (await generate(client, alice, **ask(prompt))).status_code == 202
        assert_envelope(await generate(client, alice, **ask("a3")), 429, "rate_limited")
        gate.open.set()
        assert (await holder).status_code == 200


async def test_a_compat_stream_that_fails_while_queued_answers_its_real_status(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """Queue notices are not shown on the OpenAI and Anthropic surfaces, so they do not
    open the stream: a request refused when its turn comes (its prompt does not fit the
    model's context) is a plain 400 in the vendor's shape, as an SDK expects. The native
    stream has already said ``queued`` in its 200: there it is an error frame."""
    app = share_app(tmp_path, database_url, openai_sim)
    async with serving(app) as (client, gate):
        holder = await hold_the_slot(client, gate, ADMIN)
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "too long 1"}]}
        openai = asyncio.ensure_future(
            post(client, "/openai/v1/chat/completions", {**chat, "stream": True}, ADMIN)
        )
        message = {**chat, "messages": [{"role": "user", "content": "too long 2"}]}
        anthropic = asyncio.ensure_future(
            post(
                client,
                "/anthropic/v1/messages",
                {**message, "max_tokens": 8, "stream": True},
                ADMIN,
            )
        )
        native = asyncio.ensure_future(sse_frames(client, ADMIN, **ask("too long 3")))
        await until(lambda: waiting(app) == 3, "three streams to queue")
        gate.open.set()

        refused = await openai
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_parameter"
        refused = await anthropic
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["type"] == "invalid_request_error"
        frames = await asyncio.wait_for(native, WAIT_S)
        assert [f.get("event") if isinstance(f, dict) else f for f in frames] == [
            "queued",
            *(["queued"] * (len(frames) - 3)),
            "error",
            "[DONE]",
        ]
        assert frames[-2]["code"] == "invalid_parameter"
        assert (await holder).status_code == 200


async def test_a_reserved_place_that_no_slot_took_over_is_given_back() -> None:
    """A native stream's place is taken before its 200; a stream that never starts (its
    client gone before the first read) closes it, and the place goes to the next."""
    scheduler = Scheduler(Gate().runtime, SchedulerLimits(max_queue_depth=4))
    try:
        first = scheduler.reserve(MODEL, "r1", "alice")  # the free slot
        second = scheduler.reserve(MODEL, "r2", "bob")  # first in line
        assert scheduler.reserve(MODEL, "r2", "bob") == second  # taken once
        assert (scheduler.admission.depth(MODEL), scheduler.admission.position("r2")) == (1, 1)
        await first.aclose()
        assert scheduler.admission.depth(MODEL) == 0  # r2 holds the slot now
        await second.aclose()
        spec = ModelSpec(MODEL, Path("/models/zz-local.gguf"), "gguf", "text")
        async with asyncio.timeout(WAIT_S), scheduler.slot(spec, "r3", user="carol") as slot:
            assert slot.queue_ms < 1000  # nothing held the model: at once
    finally:
        await scheduler.close()
