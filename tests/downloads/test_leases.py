"""Download jobs across replicas (API.md §11), in one process: managers that each act
as a replica on one database, beside an app whose HTTP routes follow their jobs. Each
job runs on the one replica holding its lease; a lease that expires is taken over; a
cancel or an event stream reaches a job wherever it runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text, update

from pluggably.app import create_app
from pluggably.cluster.identity import ReplicaIdentity
from pluggably.container import Container
from pluggably.db import utcnow
from pluggably.downloads.manager import DownloadManager
from pluggably.downloads.models import DownloadJob
from pluggably.downloads.runs import DownloadSettings
from pluggably.downloads.schemas import DownloadRequest
from pluggably.downloads.worker import DownloadRunner
from tests.conftest import client_for, running
from tests.downloads.test_downloads import ADMIN, MB, hub_settings, seed_hub, wait_job
from tests.fixtures.hf_hub import FakeHub

BODY = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
KEY = ("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")  # the file BODY fetches: 2 MB


def replica(app: FastAPI, lease_s: float = 1.0) -> DownloadManager:
    """Another replica's download manager on the app's database and data directory,
    with leases that count even on SQLite."""
    c: Container = app.state.container
    runner = DownloadRunner(
        c.db,
        c.registry,
        c.quota,
        c.hub,
        DownloadSettings(keep_partial=False),
        c.metrics,
        ReplicaIdentity(shared=True, lease_s=lease_s),
    )
    return DownloadManager(runner)


@asynccontextmanager
async def cluster(
    tmp_path: Path, database_url: str, hub: FakeHub, count: int
) -> AsyncIterator[tuple[FastAPI, list[DownloadManager]]]:
    # The app's own take-over pass waits a long lease: only the managers here run jobs.
    app = create_app(hub_settings(tmp_path, database_url, hub, cluster_lease_s=600))
    async with running(app):
        managers = [replica(app) for _ in range(count)]
        try:
            yield app, managers
        finally:
            for manager in managers:
                await manager.close()


async def submit(manager: DownloadManager) -> str:
    job, created = await manager.submit("usr_test", DownloadRequest.model_validate(BODY))
    assert created
    return job.id


async def row(manager: DownloadManager, job_id: str) -> DownloadJob:
    async with manager.db.session() as session:
        job = await session.get(DownloadJob, job_id)
    assert job is not None
    return job


async def until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def sent_at_least(hub: FakeHub, n: int) -> None:
    async def enough() -> bool:
        return bool(hub.bytes_sent[KEY] >= n)

    await until(enough)


def cdn_gets(hub: FakeHub) -> list[str]:
    """Transfers of the file: each run of the job makes one (a resume asks a Range)."""
    return [
        r.headers.get("range", "")
        for r in hub.requests
        if r.method == "GET" and "cdn-lfs" in r.path and "Q4_K_M" in r.path
    ]


async def test_a_released_job_is_taken_over_by_exactly_one_replica(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 512 * 1024
    async with cluster(tmp_path, database_url, hf_hub, 3) as (app, (a, b, c)):
        job_id = await submit(a)
        assert (await row(a, job_id)).runner_id == a.runner.leases.me
        # Neither another replica's startup nor its take-over touches a job A runs.
        assert (await b.resume_unfinished(), await c.take_over()) == (0, 0)
        b.runner.start(job_id)  # even told to, B's run finds the lease taken and stands back

        async def b_stood_back() -> bool:
            return job_id not in b.runner.runs

        await until(b_stood_back)
        await sent_at_least(hf_hub, 600_000)
        await a.close()  # shutdown: the job stays running, its lease released at once
        stopped = await row(a, job_id)
        assert (stopped.status, stopped.runner_id, stopped.lease_until) == ("running", None, None)
        hf_hub.throttle_bps = None
        taken = await asyncio.gather(b.take_over(), c.take_over())
        assert sorted(taken) == [0, 1]
        async with client_for(app) as client:
            done = await wait_job(client, job_id, "completed", "failed")
            assert done["status"] == "completed", done
            model = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()
        assert Path(model["local_path"]).read_bytes() == files["tiny-Q4_K_M.gguf"]
    first, resumed = cdn_gets(hf_hub)  # one transfer, then one resume: not two
    assert (first, resumed[:6]) == ("", "bytes=")
    assert (await row(b, job_id)).runner_id is None  # released when it finished


async def test_a_running_job_renews_its_lease_even_while_stalled(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = 256 * 1024
    async with cluster(tmp_path, database_url, hf_hub, 2) as (_app, (a, b)):
        job_id = await submit(a)
        await sent_at_least(hf_hub, 100_000)
        hf_hub.throttle_bps = 1  # the upstream stalls: no byte arrives for a while
        first = (await row(a, job_id)).lease_until
        assert first is not None
        await asyncio.sleep(2.5)  # well past the 1 s lease
        now, renewed = utcnow(), await row(a, job_id)
        assert renewed.lease_until is not None
        assert renewed.lease_until > now
        assert renewed.lease_until > first + timedelta(seconds=1)
        assert renewed.runner_id == a.runner.leases.me
        assert await b.take_over() == 0
        assert list(a.runner.runs) == [job_id]


async def test_an_expired_lease_is_taken_over_and_the_download_completes(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 512 * 1024
    async with cluster(tmp_path, database_url, hf_hub, 2) as (app, (a, b)):
        job_id = await submit(a)
        await sent_at_least(hf_hub, 600_000)
        await a.close()
        # As a replica that died leaves it: still holding a lease that runs out.
        async with a.db.session() as session:
            lapse = utcnow() + timedelta(seconds=1)
            await session.execute(
                update(DownloadJob)
                .where(DownloadJob.id == job_id)
                .values(runner_id="rep_dead", lease_until=lapse)
            )
        hf_hub.throttle_bps = None
        assert await b.take_over() == 0  # not before the lease runs out
        await asyncio.sleep(1.2)
        assert await b.take_over() == 1
        async with client_for(app) as client:
            done = await wait_job(client, job_id, "completed", "failed")
        assert done["status"] == "completed", done
        assert done["bytes_done"] == 2 * MB
        model = (await row(b, job_id)).model_id
        async with client_for(app) as client:
            info = (await client.get(f"/v1/models/{model}", headers=ADMIN)).json()
        assert Path(info["local_path"]).read_bytes() == files["tiny-Q4_K_M.gguf"]
    assert [r[:6] for r in cdn_gets(hf_hub)] == ["", "bytes="]  # resumed, not restarted


async def test_a_cancel_asked_on_another_replica_stops_the_runner(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = 256 * 1024
    async with cluster(tmp_path, database_url, hf_hub, 2) as (_app, (a, b)):
        job_id = await submit(a)
        await sent_at_least(hf_hub, 100_000)
        started = time.monotonic()
        answer = await b.cancel(job_id)
        assert answer.status == "cancelled"
        assert time.monotonic() - started < 2.0  # A reads the flag within a second
        await asyncio.to_thread(hf_hub.wait_idle, 1.0)
        sent = hf_hub.bytes_sent[KEY]
        await asyncio.sleep(0.3)
        assert hf_hub.bytes_sent[KEY] == sent < 2 * MB
        assert not a.runner.runs
        stopped = await row(a, job_id)
        assert (stopped.status, stopped.cancel_requested, stopped.runner_id) == (
            "cancelled",
            True,
            None,
        )
        assert not (a.staging / job_id).exists()  # keep_partial off: its files went


async def test_a_job_running_on_another_replica_streams_its_progress(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = MB  # two seconds: progress written at 1 s intervals
    async with cluster(tmp_path, database_url, hf_hub, 1) as (app, (a,)):
        job_id = await submit(a)
        assert job_id not in app.state.container.downloads.runner.runs
        frames = []
        async with (
            client_for(app) as client,
            client.stream("GET", f"/v1/jobs/{job_id}/events", headers=ADMIN) as stream,
        ):
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    frames.append(line.removeprefix("data: "))
    assert frames[-1] == "[DONE]"
    states = [json.loads(f) for f in frames[:-1]]
    assert states[-1]["status"] == "completed"
    assert states[-1]["bytes_done"] == 2 * MB
    progress = [s["bytes_done"] for s in states]
    assert progress == sorted(progress)
    seen = [(s["status"], s["bytes_done"]) for s in states]
    assert all(x != y for x, y in itertools.pairwise(seen))  # per change, not per read
    assert any(0 < s["bytes_done"] < 2 * MB for s in states)
    assert any(s["speed_bps"] for s in states if s["status"] == "running")


async def test_a_cancel_waiting_for_another_replica_holds_no_database_connection(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("reads pg_stat_activity")
    seed_hub(hf_hub)
    async with cluster(tmp_path, database_url, hf_hub, 1) as (app, (a,)):
        job_id = await submit(a)
        await a.close()
        # As a replica that holds the job but does not hear the cancel (hung) leaves it.
        async with a.db.session() as session:
            hung = utcnow() + timedelta(seconds=60)
            await session.execute(
                update(DownloadJob)
                .where(DownloadJob.id == job_id)
                .values(status="running", runner_id="rep_hung", lease_until=hung)
            )
        idle_in_transaction = text(
            "SELECT pid, xact_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND state = 'idle in transaction'"
        )
        async with client_for(app) as client:
            cancel = asyncio.create_task(client.delete(f"/v1/jobs/{job_id}", headers=ADMIN))
            seen = []
            for _ in range(3):  # while the answer waits (3 s) for the runner to stop
                await asyncio.sleep(0.5)
                async with a.db.session() as session:
                    seen.append(set((await session.execute(idle_in_transaction)).all()))
            answer = await cancel
        assert set.intersection(*seen) == set()  # nothing held across the wait
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "running"  # asked; its runner has not stopped it
        assert (await row(a, job_id)).cancel_requested


async def test_a_runner_that_cannot_renew_its_lease_stops_writing_before_it_runs_out(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("stalls the renewals with a row lock")
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 256 * 1024
    async with cluster(tmp_path, database_url, hf_hub, 2) as (app, (a, b)):
        job_id = await submit(a)
        await sent_at_least(hf_hub, 100_000)
        part = a.staging / job_id / f"{KEY[1]}.part"
        # The database holds A's renewals back (the row is locked): well before its 1 s
        # lease could run out and B take the job, A stops writing the file they share.
        async with a.db.engine.connect() as locker:
            lock = "SELECT id FROM download_jobs WHERE id = :id FOR UPDATE"
            await locker.execute(text(lock), {"id": job_id})
            await asyncio.sleep(1.0)
            size = part.stat().st_size
            await asyncio.sleep(0.5)
            assert part.stat().st_size == size < 2 * MB
            await locker.rollback()

        # Once the database answers, A lets the job go, and B resumes it from A's file.
        async def a_let_go() -> bool:
            return job_id not in a.runner.runs and (await row(a, job_id)).runner_id is None

        await until(a_let_go)
        hf_hub.throttle_bps = None
        assert await b.take_over() == 1
        async with client_for(app) as client:
            done = await wait_job(client, job_id, "completed", "failed")
            assert done["status"] == "completed", done
            model = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()
        assert Path(model["local_path"]).read_bytes() == files["tiny-Q4_K_M.gguf"]
    assert [r[:6] for r in cdn_gets(hf_hub)] == ["", "bytes="]
