"""The owner of running downloads: one asyncio task per job, progress kept in
memory and flushed to the database every second, listeners for SSE, cancel that
closes the connection, resume of unfinished jobs at startup."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from pluggably.db import Database, utcnow
from pluggably.downloads import local, sources, transfer
from pluggably.downloads.models import DownloadJob
from pluggably.downloads.repository import DownloadRepository
from pluggably.downloads.runs import DownloadSettings, Run, bytes_on_disk, install, quota_error
from pluggably.downloads.schemas import DownloadJobInfo, DownloadRequest, job_info
from pluggably.errors import Conflict, GatewayError, InvalidParameter, JobNotFound, StorageFull
from pluggably.netguard import check_public_url
from pluggably.observability.logging import get_logger
from pluggably.observability.metrics import Metrics
from pluggably.registry import scan
from pluggably.registry.enrichment import enrich
from pluggably.registry.hub import HubClient
from pluggably.registry.service import RegistryService
from pluggably.storage.quota import Quota

log = get_logger("pluggably.downloads")
TERMINAL = ("completed", "failed", "cancelled")
FLUSH_EVERY_S = 1.0


class DownloadManager:
    def __init__(
        self,
        db: Database,
        registry: RegistryService,
        quota: Quota,
        hub: HubClient,
        settings: DownloadSettings,
        metrics: Metrics,
    ) -> None:
        self.db, self.registry, self.quota, self.hub, self.settings = (
            db,
            registry,
            quota,
            hub,
            settings,
        )
        self.metrics = metrics
        self.staging = registry.models_dir / scan.STAGING_DIR
        self._runs: dict[str, Run] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._submit_lock = asyncio.Lock()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=60.0))
        # URLs users name: connected to public addresses only, checked as each
        # connection is made (DNS rebinding), unless the operator allows private ones.
        self._url_client = (
            self._client
            if settings.allow_private_urls
            else transfer.public_only_client(self._client.timeout)
        )

    # lifecycle
    async def resume_unfinished(self) -> int:
        async with self.db.session() as session:
            jobs = await DownloadRepository(session).active()
        for job in jobs:
            self._start(job.id)
        return len(jobs)

    async def close(self) -> None:
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()  # the jobs stay "running" in the database and resume on restart
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()
        await self._url_client.aclose()

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
                )
                await repo.add(job)
                await self._adopt_partial_files(repo, key, job.id)
        self._start(job.id)
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
        return active | set(self._runs)

    async def get(self, session: Any, job_id: str) -> DownloadJobInfo:
        job = await DownloadRepository(session).get(job_id)
        if job is None:
            raise JobNotFound(f"No download job '{job_id}'.")
        return self.info(job)

    def info(self, job: DownloadJob) -> DownloadJobInfo:
        run = self._runs.get(job.id)
        if run is not None and job.status not in TERMINAL:
            job.bytes_done = max(job.bytes_done, run.bytes_done)
        return job_info(job, run.speed_bps if run and job.status == "running" else None)

    async def cancel(self, job_id: str) -> DownloadJobInfo:
        run = self._runs.get(job_id)
        if run is not None:
            run.cancel.set()
            if run.task is not None and run.transferring:
                # Also interrupts a transfer stalled between chunks: its connection closes.
                run.task.cancel()
                await asyncio.wait({run.task}, timeout=5)
        async with self.db.session() as session:
            job = await DownloadRepository(session).get(job_id)
            if job is None:
                raise JobNotFound(f"No download job '{job_id}'.")
            if job.status == "queued":  # never started here (e.g. another replica's)
                job.status, job.finished_at = "cancelled", utcnow()
            return self.info(job)

    async def events(self, job_id: str) -> AsyncIterator[DownloadJobInfo]:
        """The job's state now, then on every change, until it ends."""
        queue: asyncio.Queue[DownloadJobInfo] = asyncio.Queue(maxsize=64)
        run = self._runs.get(job_id)
        if run is not None:
            run.listeners.add(queue)
        try:
            async with self.db.session() as session:
                current = await self.get(session, job_id)
            yield current
            if current.status in TERMINAL or run is None:
                return
            while True:
                update = await queue.get()
                yield update
                if update.status in TERMINAL:
                    return
        finally:
            if run is not None:
                run.listeners.discard(queue)

    # the work
    def _start(self, job_id: str) -> None:
        if job_id in self._runs:
            return
        run = self._runs[job_id] = Run()
        run.task = asyncio.create_task(self._run(job_id, run), name=f"download-{job_id}")

    async def _run(self, job_id: str, run: Run) -> None:
        staging = self.staging / job_id
        self.metrics.downloads_active.inc()
        try:
            plan = await self._begin(job_id, run, staging)
            run.transferring = True
            await self._transfer(job_id, run, plan, staging)
            run.transferring = False
            local_path = await asyncio.to_thread(install, staging, plan, self.registry)
            try:
                await self._register(job_id, plan, local_path)
            except BaseException:
                # No row owns these files: take them back out of the models directory.
                dest = self.registry.confined(plan.dest)
                await asyncio.to_thread(shutil.rmtree, dest, True)
                raise
            await self._finish(job_id, run, "completed")
        except transfer.Cancelled:
            if run.over_quota:
                shutil.rmtree(staging, ignore_errors=True)
                await self._finish(job_id, run, "failed", quota_error())
                return
            if not self.settings.keep_partial:
                shutil.rmtree(staging, ignore_errors=True)
            await self._finish(job_id, run, "cancelled")
        except GatewayError as exc:
            await self._finish(job_id, run, "failed", {"code": exc.code, "message": exc.message})
        except OSError as exc:
            full = exc.errno == errno.ENOSPC
            error = StorageFull("The disk filled up during the download.") if full else None
            log.exception("download_failed", job_id=job_id)
            if full:  # the partial file holds the space everything else now lacks
                await asyncio.to_thread(shutil.rmtree, staging, True)
            await self._finish(
                job_id,
                run,
                "failed",
                {"code": error.code, "message": error.message}
                if error
                else {"code": "internal_error", "message": "The download failed on this server."},
            )
        except asyncio.CancelledError:
            if not run.cancel.is_set():
                raise  # shutdown: left "running" so that a restart resumes it
            if not self.settings.keep_partial:
                shutil.rmtree(staging, ignore_errors=True)
            await self._finish(job_id, run, "cancelled")
        except Exception:
            log.exception("download_failed", job_id=job_id)
            await self._finish(
                job_id, run, "failed", {"code": "internal_error", "message": "The download failed."}
            )
        finally:
            self.metrics.downloads_active.dec()
            self._runs.pop(job_id, None)

    async def _begin(self, job_id: str, run: Run, staging: Path) -> sources.Plan:
        async with self.db.session() as session:
            job = await DownloadRepository(session).get(job_id)
            assert job is not None
            assert job.plan is not None
            job.status = "running"
            plan = sources.Plan.from_json(job.plan)
        run.bytes_done = bytes_on_disk(staging, plan)  # resume: what earlier tries left
        if self.quota.limit_bytes is not None and plan.total_bytes is None:
            # Size unknown up front (a URL without Content-Length): watch it while it runs.
            used = await self.quota.used_bytes()
            async with self.db.session() as session:
                reserved = await DownloadRepository(session).reserved_bytes()
            run.budget = self.quota.limit_bytes - used - reserved + run.bytes_done
        await self._flush(job_id, run)
        return plan

    async def _transfer(self, job_id: str, run: Run, plan: sources.Plan, staging: Path) -> None:
        headers = self.hub.headers() if plan.needs_hub_auth else {}
        check = None
        if plan.source_type == "url":
            allow = self.settings.allow_private_urls

            async def check(url: str) -> None:
                await check_public_url(url, allow_private=allow)

        last_flush = time.monotonic()

        def on_bytes(n: int) -> None:
            nonlocal last_flush
            run.add(n)
            if n > 0:
                self.metrics.download_bytes.inc(n)
            if run.budget is not None and run.bytes_done > run.budget:
                run.over_quota = True
                run.cancel.set()
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                last_flush = time.monotonic()
                asyncio.get_running_loop().create_task(self._flush(job_id, run))

        for planned in plan.files:
            final = staging / planned.path
            if final.exists():
                continue  # finished by an earlier attempt
            part = staging / (planned.path + ".part")
            await transfer.fetch(
                self._url_client if plan.source_type == "url" else self._client,
                planned.url,
                part,
                headers=headers,
                expected_size=planned.size,
                on_bytes=on_bytes,
                cancel=run.cancel,
                check_redirect=check,
            )
            if planned.sha256:
                digest = await asyncio.to_thread(transfer.sha256_of, part)
                if digest != planned.sha256:
                    part.unlink(missing_ok=True)
                    raise InvalidParameter(
                        f"Checksum mismatch for {planned.path}: expected {planned.sha256}, "
                        f"got {digest}; the partial file was removed."
                    )
            part.replace(final)

    async def _register(self, job_id: str, plan: sources.Plan, local_path: str) -> None:
        found = await asyncio.to_thread(scan.describe, self.registry.models_dir, local_path)
        if found is None:
            raise InvalidParameter(
                "The downloaded files are not a model the local runtimes know "
                "(GGUF, transformers, diffusers or Shap-E)."
            )
        model = scan.as_model(found, origin="downloaded")
        model.id, model.name = plan.model_id, plan.name
        model.version = plan.version or found.version
        model.modality = plan.modality or found.modality
        model.source_type, model.source_uri = plan.source_type, plan.source_uri
        model.source_revision, model.owns_files = plan.revision, True
        huggingface = plan.source_type == "huggingface"
        async with self.db.session() as session:
            await self.registry.register(
                session, model, doc_status="pending" if huggingface else None
            )
        if huggingface:
            task = asyncio.create_task(
                enrich(
                    self.db,
                    self.hub,
                    self._client,
                    plan.model_id,
                    plan.source_uri,
                    plan.revision,
                    plan.tags,
                )
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _flush(self, job_id: str, run: Run) -> None:
        async with self.db.session() as session:
            job = await DownloadRepository(session).get(job_id)
            if job is None or job.status in TERMINAL:
                return
            job.bytes_done = run.bytes_done
            self._notify(run, job_info(job, run.speed_bps))

    async def _finish(
        self, job_id: str, run: Run, status: str, error: dict[str, str] | None = None
    ) -> None:
        async with self.db.session() as session:
            job = await DownloadRepository(session).get(job_id)
            if job is None:
                return
            job.status, job.error, job.finished_at = status, error, utcnow()
            if status == "completed" and job.bytes_total is None:
                job.bytes_total = run.bytes_done
            job.bytes_done = (
                job.bytes_total or run.bytes_done if status == "completed" else run.bytes_done
            )
            await session.flush()
            self._notify(run, job_info(job))
        log.info("download_finished", job_id=job_id, status=status, error=error)

    @staticmethod
    def _notify(run: Run, info: DownloadJobInfo) -> None:
        for queue in list(run.listeners):
            if queue.full():
                queue.get_nowait()  # a slow listener gets the latest state, not a backlog
            queue.put_nowait(info)
