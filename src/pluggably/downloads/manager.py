"""The owner of download jobs: submitting (one job per source, checked against
running jobs, the registry and the quota), listing, cancelling and following them.
``DownloadRunner`` runs them, each on one replica (its lease); unfinished jobs resume
at startup, and a dead replica's are taken over. Any replica follows or cancels any
job: one running elsewhere is followed through its row and cancelled by a flag that
its runner reads every second."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

from pluggably.downloads import local, sources
from pluggably.downloads.models import DownloadJob
from pluggably.downloads.repository import DownloadRepository
from pluggably.downloads.runs import TERMINAL
from pluggably.downloads.schemas import DownloadJobInfo, DownloadRequest, job_info
from pluggably.downloads.worker import DownloadRunner
from pluggably.errors import Conflict, InvalidParameter, JobNotFound
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.downloads")
# How long a cancel waits for another replica's runner to stop the job (it reads the
# flag every second), and how often a job running elsewhere is read for its events.
CANCEL_WAIT_S = 3.0
FOLLOW_EVERY_S = 0.5


class DownloadManager:
    """Download jobs as callers see them (submit, list, follow, cancel); ``runner``
    runs them."""

    def __init__(self, runner: DownloadRunner) -> None:
        self.runner = runner
        self.db, self.registry, self.quota = runner.db, runner.registry, runner.quota
        self.hub, self.settings, self.staging = runner.hub, runner.settings, runner.staging
        self._submit_lock = asyncio.Lock()

    # lifecycle
    async def resume_unfinished(self) -> int:
        """At startup: the unfinished jobs no live replica runs run here (on SQLite,
        every one: this process is the only one)."""
        return len(await self._claim_unclaimed())

    async def take_over(self) -> int:
        """Periodic on PostgreSQL: the jobs of a replica that died (their lease expired)
        or shut down (released) run here, from the partial files it left in the
        staging folder that replicas share."""
        taken = await self._claim_unclaimed()
        if taken:
            log.warning("downloads_taken_over", jobs=taken)
        return len(taken)

    async def _claim_unclaimed(self) -> list[str]:
        claimed = []
        for job_id in await self.runner.leases.unclaimed():
            if job_id not in self.runner.runs and await self.runner.leases.claim(job_id):
                self.runner.start(job_id)
                claimed.append(job_id)
        return claimed

    async def close(self) -> None:
        await self.runner.close()

    # requests
    async def submit(self, user_id: str, body: DownloadRequest) -> tuple[DownloadJob, bool]:
        """The job for this request: an existing one for the same source, or a new one.
        A local source is registered at once: its job is already completed."""
        if body.source.type == "local":
            async with self._submit_lock, self.db.session() as session:
                return await local.register(session, self.registry, user_id, body)
        key = sources.source_key(body)
        async with self._submit_lock:
            async with self.db.session() as session:
                existing = await self._existing(session, key)
                if existing is not None:
                    return existing, False
            plan = await self._plan(body)
            async with self.db.session() as session:
                busy = await DownloadRepository(session).active_by_model(plan.model_id)
                if busy is not None:
                    raise Conflict(
                        f"A download of model '{plan.model_id}' from another source is running "
                        f"(job {busy.id}); cancel it or pass another model.id."
                    )
                if await self.registry.exists(session, plan.model_id):
                    raise Conflict(
                        f"A model '{plan.model_id}' is already registered; pass model.id to "
                        "register this download under another id."
                    )
                repo = DownloadRepository(session)
                await self.quota.ensure_room(plan.total_bytes or 0, await repo.reserved_bytes())
                job = DownloadJob(
                    model_id=plan.model_id,
                    source_key=key,
                    request=body.model_dump(mode="json"),
                    plan=plan.to_json(),
                    status="queued",
                    bytes_done=0,
                    bytes_total=plan.total_bytes,
                    created_by=user_id,
                    # Claimed as it is made: this replica runs it.
                    runner_id=self.runner.leases.me,
                    lease_until=self.runner.leases.until(),
                )
                await repo.add(job)
                await self._adopt_partial_files(repo, key, job.id)
        self.runner.start(job.id)
        return job, True

    async def _adopt_partial_files(self, repo: DownloadRepository, key: str, job_id: str) -> None:
        """A new attempt at a source continues from what a cancelled or failed one left."""
        for old in await repo.abandoned_by_key(key):
            leftover = self.staging / old.id
            if leftover.is_dir():
                await asyncio.to_thread(os.replace, leftover, self.staging / job_id)
                return

    async def _existing(self, session: Any, key: str) -> DownloadJob | None:
        repo = DownloadRepository(session)
        active = await repo.active_by_key(key)
        if active is not None:
            return active
        done = await repo.completed_by_key(key)
        if done is not None and await self.registry.exists(session, done.model_id):
            return done
        return None

    async def _plan(self, body: DownloadRequest) -> sources.Plan:
        if body.source.type == "huggingface":
            plan = await sources.plan_huggingface(self.hub, body)
        else:
            plan = await sources.plan_url(body, allow_private=self.settings.allow_private_urls)
        if body.options.sha256:
            if len(plan.files) != 1:
                raise InvalidParameter("options.sha256 applies to single-file downloads only.")
            plan.files[0].sha256 = body.options.sha256.lower()
        total = plan.total_bytes
        if total and total > self.settings.size_guard_bytes and not body.options.allow_large:
            raise InvalidParameter(
                f"This download is {total / 1e9:.1f} GB; pass options.allow_large=true to proceed."
            )
        return plan

    async def page(self, session: Any, *, limit: int, status: str | None) -> list[DownloadJobInfo]:
        return [self.info(j) for j in await DownloadRepository(session).page(limit, status)]

    async def active_jobs(self) -> set[str]:
        """Jobs that own a staging folder: running here, or queued/running in the
        database (about to resume, or another replica's)."""
        async with self.db.session() as session:
            active = {job.id for job in await DownloadRepository(session).active()}
        return active | set(self.runner.runs)

    async def get(self, session: Any, job_id: str) -> DownloadJobInfo:
        job = await DownloadRepository(session).get(job_id)
        if job is None:
            raise JobNotFound(f"No download job '{job_id}'.")
        return self.info(job)

    def info(self, job: DownloadJob) -> DownloadJobInfo:
        run = self.runner.runs.get(job.id)
        if run is not None and job.status not in TERMINAL:
            job.bytes_done = max(job.bytes_done, run.bytes_done)
        return job_info(job, run.speed_bps if run and job.status == "running" else None)

    async def cancel(self, job_id: str) -> DownloadJobInfo:
        """Stop the job wherever it is. Running here: stopped now. Run by no replica
        (queued, or its runner gone): cancelled now. Running on another replica: asked
        to stop, and the answer waits a moment for it so that it says what happened.

        Not in the request's session: each read and write is a short session of its own,
        so the wait holds no connection (nor a transaction open), what it writes is
        committed before it waits (the other replica's runner reads the flag), and what
        it reads is that runner's latest commit."""
        run = self.runner.runs.get(job_id)
        if run is not None and run.stop():
            assert run.task is not None
            await asyncio.wait({run.task}, timeout=5)
        async with self.db.session() as own:
            current = await self.get(own, job_id)
            if current.status in TERMINAL:
                return current
            ended = job_id not in self.runner.runs and await self.runner.leases.cancel_unclaimed(
                own, job_id
            )
            if not ended:
                await DownloadRepository(own).request_cancel(job_id)
        if ended and not self.settings.keep_partial:  # what a runner that died left
            await asyncio.to_thread(shutil.rmtree, self.staging / job_id, True)
        deadline = time.monotonic() + (0 if ended else CANCEL_WAIT_S)
        while True:
            async with self.db.session() as own:
                current = await self.get(own, job_id)
            if current.status in TERMINAL or time.monotonic() >= deadline:
                return current
            await asyncio.sleep(0.1)

    async def events(self, job_id: str) -> AsyncIterator[DownloadJobInfo]:
        """The job's state now, then on every change, until it ends."""
        queue: asyncio.Queue[DownloadJobInfo] = asyncio.Queue(maxsize=64)
        run = self.runner.runs.get(job_id)
        if run is None:
            async for update in self._follow(job_id):
                yield update
            return
        run.listeners.add(queue)
        try:
            async with self.db.session() as session:
                current = await self.get(session, job_id)
            yield current
            if current.status in TERMINAL:
                return
            while True:
                update = await queue.get()
                yield update
                if update.status in TERMINAL:
                    return
        finally:
            run.listeners.discard(queue)

    async def _follow(self, job_id: str) -> AsyncIterator[DownloadJobInfo]:
        """A job this replica does not run: its row, read every ``FOLLOW_EVERY_S``
        (its runner writes progress every second), on every change until it ends."""
        last: DownloadJobInfo | None = None
        while True:
            async with self.db.session() as session:
                job = await DownloadRepository(session).get(job_id)
            if job is None:
                return
            if last is None or (job.status, job.bytes_done, job.bytes_total) != (
                last.status,
                last.bytes_done,
                last.bytes_total,
            ):
                last = job_info(job, _speed(last, job))
                yield last
            if job.status in TERMINAL:
                return
            await asyncio.sleep(FOLLOW_EVERY_S)


def _speed(before: DownloadJobInfo | None, job: DownloadJob) -> float | None:
    """Bytes per second between two reads of a running job's row."""
    if before is None or job.status != "running" or job.bytes_done <= before.bytes_done:
        return None
    elapsed = (job.updated_at - before.updated_at).total_seconds()
    return (job.bytes_done - before.bytes_done) / elapsed if elapsed > 0 else None
