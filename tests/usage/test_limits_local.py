"""Limits on a local model: a request queued behind a busy model holds its concurrency
slot while it waits, and gives it back when it leaves the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, new_user, running
from tests.fixtures.prompts import GREEDY, LONG_RUNNING
from tests.generation.test_local_generation import (
    GEMMA,
    PROMPT,
    _running_request,
    local_app,
    wait_for,
)

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}
SHORT = {"model": GEMMA, "input": PROMPT, "parameters": {"max_tokens": 4, **GREEDY}}
LONG = {"model": GEMMA, "input": {"prompt": LONG_RUNNING}, "parameters": {"max_tokens": 2000}}


async def test_a_queued_local_request_holds_its_concurrency_slot(
    tmp_path: Path, database_url: str, gemma_gguf: Path
) -> None:
    app = local_app(tmp_path, database_url, gemma_gguf, max_queue_depth=4, max_queue_per_user=4)
    async with running(app), client_for(app, timeout=60) as client:
        alice = await new_user(client, "alice")
        me = (await client.get("/v1/users/me", headers=alice)).json()["id"]
        limited = await client.put(
            f"/v1/users/{me}/limits", json={"max_concurrent": 2}, headers=ADMIN
        )
        assert limited.status_code == 200, limited.text
        holder = asyncio.ensure_future(generate(client, alice, **LONG, wait=True))

        async def is_busy() -> bool:
            status = await client.get(f"/v1/models/{GEMMA}/status", headers=ADMIN)
            return bool(status.json()["runtime_status"] == "busy")

        await wait_for(is_busy, 30)
        queued = await generate(client, alice, **SHORT, wait=False)
        assert queued.status_code == 202, queued.text
        assert queued.json()["queue_position"] == 1

        refused = await generate(client, alice, **SHORT, wait=False)
        detail = assert_envelope(refused, 429, "rate_limited")
        assert "2 requests at once" in detail["message"]

        # The waiter leaves the queue: its slot is free for the next request.
        cancel = f"/v1/requests/{queued.json()['request_id']}/cancel"
        assert (await client.post(cancel, headers=alice)).json()["cancelled"] is True
        again = await generate(client, alice, **SHORT, wait=False)
        assert again.status_code == 202, again.text
        await client.post(f"/v1/requests/{await _running_request(client)}/cancel", headers=alice)
        assert (await holder).status_code == 200  # its partial answer
        result = f"/v1/requests/{again.json()['request_id']}"
        for _ in range(600):
            if (await client.get(result, headers=alice)).json()["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert (await client.get(result, headers=alice)).json()["status"] == "completed"
