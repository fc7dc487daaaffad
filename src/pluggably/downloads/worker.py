"""Running download jobs: one asyncio task per job that transfers the planned files
into its staging folder, installs them under the models directory and registers the
model. A run first claims the job's lease (leases.py: one replica runs each job);
while it transfers, keeper.py writes its progress every second with the lease renewed
(a cancel asked on another replica is picked up there) and stops it if the lease cannot
be renewed in time. A job cancelled by shutdown stays "running" with its lease
released: a restart or another replica resumes it."""

from __future__ import annotations

import asyncio
import errno
import shutil
from pathlib import Path

import httpx

from pluggably.cluster.identity import ReplicaIdentity
from pluggably.db import Database, utcnow
from pluggably.downloads import sources, transfer
from pluggably.downloads.keeper import Keeper
from pluggably.downloads.leases import Leases
from pluggably.downloads.repository import DownloadRepository
from pluggably.downloads.runs import (
    DownloadSettings,
    Run,
    bytes_on_disk,
    install,
    quota_error,
)
from pluggably.downloads.schemas import job_info
from pluggably.errors import GatewayError, InvalidParameter, StorageFull
from pluggably.netguard import check_public_url
from pluggably.observability.logging import get_logger
from pluggably.observability.metrics import Metrics
from pluggably.registry import scan
from pluggably.registry.enrichment import enrich
from pluggably.registry.hub import HubClient
from pluggably.registry.service import RegistryService
from pluggably.storage.quota import Quota

log = get_logger("pluggably.downloads")


class RunsElsewhere(Exception):
    """Another replica holds the job's lease, or the job ended: this run stops and
    leaves the job alone."""


class DownloadRunner:
    """The running jobs of one ``DownloadManager``, by job id."""

    def __init__(
        self,
        db: Database,
        registry: RegistryService,
        quota: Quota,
        hub: HubClient,
        settings: DownloadSettings,
        metrics: Metrics,
        replica: ReplicaIdentity,
    ) -> None:
        self.db, self.registry, self.quota, self.hub, self.settings = (
            db,
            registry,
            quota,
            hub,
            settings,
        )
        self.metrics = metrics
        self.leases = Leases(db, replica)
        self.keeper = Keeper(db, self.leases)
        self.staging = registry.models_dir / scan.STAGING_DIR
        self.runs: dict[str, Run] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=60.0))
        # URLs users name: connected to public addresses only, checked as each
        # connection is made (DNS rebinding), unless the operator allows private ones.
        self._url_client = (
            self._client
            if settings.allow_private_urls
            else transfer.public_only_client(self._client.timeout)
        )

    async def close(self) -> None:
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()  # the jobs stay "running", their leases released: they resume
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()
        await self._url_client.aclose()

    def start(self, job_id: str) -> None:
        """Run the job here unless it runs already; the run claims its lease first."""
        if job_id in self.runs:
            return
        run = self.runs[job_id] = Run()
        run.task = asyncio.create_task(self._run(job_id, run), name=f"download-{job_id}")

    async def _run(self, job_id: str, run: Run) -> None:
        staging = self.staging / job_id
        self.metrics.downloads_active.inc()
        try:
            plan = await self._begin(job_id, run, staging)
            async with self.keeper.kept(job_id, run):
                await self._transfer(run, plan, staging)
            await self.keeper.flush(job_id, run)  # a lease just renewed to install under
            if run.lost:
                raise RunsElsewhere
            local_path = await asyncio.to_thread(install, staging, plan, self.registry)
            try:
                await self._register(job_id, plan, local_path)
            except BaseException:
                # No row owns these files: take them back out of the models directory.
                dest = self.registry.confined(plan.dest)
                await asyncio.to_thread(shutil.rmtree, dest, True)
                raise
            await self._finish(job_id, run, "completed")
        except RunsElsewhere:
            await self._elsewhere(job_id, run)
        except transfer.Cancelled:
            await self._cancelled(job_id, run, staging)
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
                await self._release(job_id)  # shutdown: left "running", resumable at once
                raise
            await self._cancelled(job_id, run, staging)
        except Exception:
            log.exception("download_failed", job_id=job_id)
            await self._finish(
                job_id, run, "failed", {"code": "internal_error", "message": "The download failed."}
            )
        finally:
            self.metrics.downloads_active.dec()
            self.runs.pop(job_id, None)

    async def _elsewhere(self, job_id: str, run: Run) -> None:
        log.warning("download_runs_elsewhere", job_id=job_id)
        if run.lost:  # stopped as the lease may have gone: if it had not, it goes now
            await self._release(job_id)

    async def _cancelled(self, job_id: str, run: Run, staging: Path) -> None:
        if run.lost:
            await self._elsewhere(job_id, run)
        elif run.over_quota:
            shutil.rmtree(staging, ignore_errors=True)
            await self._finish(job_id, run, "failed", quota_error())
        else:
            if not self.settings.keep_partial:
                shutil.rmtree(staging, ignore_errors=True)
            await self._finish(job_id, run, "cancelled")

    async def _release(self, job_id: str) -> None:
        try:
            await self.leases.release(job_id)
        except Exception:  # its lease then expires: a survivor still takes the job over
            log.warning("download_lease_release_failed", job_id=job_id, exc_info=True)

    async def _begin(self, job_id: str, run: Run, staging: Path) -> sources.Plan:
        if not await self.leases.claim(job_id):
            raise RunsElsewhere
        async with self.db.session() as session:
            job = await DownloadRepository(session).get(job_id)
            assert job is not None
            assert job.plan is not None
            job.status = "running"
            if job.cancel_requested:  # asked before this run began
                run.cancel.set()
            plan = sources.Plan.from_json(job.plan)
        if run.cancel.is_set():
            raise transfer.Cancelled
        run.bytes_done = bytes_on_disk(staging, plan)  # resume: what earlier tries left
        if self.quota.limit_bytes is not None and plan.total_bytes is None:
            # Size unknown up front (a URL without Content-Length): watch it while it runs.
            used = await self.quota.used_bytes()
            async with self.db.session() as session:
                reserved = await DownloadRepository(session).reserved_bytes()
            run.budget = self.quota.limit_bytes - used - reserved + run.bytes_done
        await self.keeper.flush(job_id, run)
        return plan

    async def _transfer(self, run: Run, plan: sources.Plan, staging: Path) -> None:
        headers = self.hub.headers() if plan.needs_hub_auth else {}
        check = None
        if plan.source_type == "url":
            allow = self.settings.allow_private_urls

            async def check(url: str) -> None:
                await check_public_url(url, allow_private=allow)

        def on_bytes(n: int) -> None:
            run.add(n)
            if n > 0:
                self.metrics.download_bytes.inc(n)
            if run.budget is not None and run.bytes_done > run.budget:
                run.over_quota = True
                run.cancel.set()

        for planned in plan.files:
            final = staging / planned.path
            if final.exists():
                continue  # finished by an earlier attempt
            if run.cancel.is_set():  # before the next file's .part is opened (or emptied)
                raise transfer.Cancelled
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

    async def _finish(
        self, job_id: str, run: Run, status: str, error: dict[str, str] | None = None
    ) -> None:
        async with self.db.session() as session:
            job = await DownloadRepository(session).get(job_id)
            if job is None or job.runner_id != self.leases.me:
                log.warning("download_runs_elsewhere", job_id=job_id, status=status)
                return  # claimed by another replica meanwhile: the job is its to finish
            job.status, job.error, job.finished_at = status, error, utcnow()
            job.runner_id = job.lease_until = None
            if status == "completed" and job.bytes_total is None:
                job.bytes_total = run.bytes_done
            job.bytes_done = (
                job.bytes_total or run.bytes_done if status == "completed" else run.bytes_done
            )
            await session.flush()
            run.notify(job_info(job))
        log.info("download_finished", job_id=job_id, status=status, error=error)
