"""The state of one running download (progress, speed, cancel, quota budget) and
the settings downloads run under."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pluggably.downloads import sources
from pluggably.downloads.schemas import DownloadJobInfo
from pluggably.errors import Conflict, StorageFull
from pluggably.registry.service import RegistryService

TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class DownloadSettings:
    allow_private_urls: bool = False
    keep_partial: bool = True
    size_guard_bytes: int = 50 * 10**9


@dataclass
class Run:
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    bytes_done: int = 0
    speed_bps: float | None = None
    listeners: set[asyncio.Queue[DownloadJobInfo]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    # Bytes this run may write before it passes the quota (None: no limit to watch).
    budget: int | None = None
    over_quota: bool = False
    transferring: bool = False
    # Its lease went to another replica (this one stalled past it), or may have (it could
    # not renew it in time): it stops without finishing the job, which is the new
    # runner's now (or, still ours, is let go for one to take).
    lost: bool = False
    # When its last renewal that the database confirmed began (monotonic).
    renewed_at: float = field(default_factory=time.monotonic)
    _window_start: float = field(default_factory=time.monotonic)
    _window_bytes: int = 0

    def add(self, n: int) -> None:
        self.bytes_done += n
        self._window_bytes += n
        elapsed = time.monotonic() - self._window_start
        if elapsed >= 0.5:
            rate = self._window_bytes / elapsed
            self.speed_bps = rate if self.speed_bps is None else 0.5 * self.speed_bps + 0.5 * rate
            self._window_start, self._window_bytes = time.monotonic(), 0

    def stop(self) -> bool:
        """Cancel this run: its transfer ends at the next chunk, and one stalled between
        chunks is interrupted (its connection closes). True when the task was
        interrupted, so that the caller may wait for it to end."""
        self.cancel.set()
        if self.task is None or not self.transferring:
            return False
        self.task.cancel()
        return True

    def notify(self, info: DownloadJobInfo) -> None:
        for queue in list(self.listeners):
            if queue.full():
                queue.get_nowait()  # a slow listener gets the latest state, not a backlog
            queue.put_nowait(info)


def quota_error() -> dict[str, str]:
    error = StorageFull(
        "The download grew past the model storage quota and was stopped; its partial "
        "files were removed."
    )
    return {"code": error.code, "message": error.message}


def install(staging: Path, plan: sources.Plan, registry: RegistryService) -> str:
    """Blocking: move the finished files under the models directory, into the model's
    own folder; the registry path of what was installed."""
    root = registry.models_dir
    dest = registry.confined(plan.dest)
    if dest.exists():
        raise Conflict(f"The folder for model '{plan.model_id}' already exists: {plan.dest}.")
    for planned in plan.files:
        target = dest / planned.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / planned.path, target)
    shutil.rmtree(staging, ignore_errors=True)
    first = plan.files[0].path
    single = len(plan.files) == 1 or first.lower().endswith(".gguf")
    return (dest / first if single else dest).relative_to(root.resolve()).as_posix()


def bytes_on_disk(staging: Path, plan: sources.Plan) -> int:
    """What earlier attempts left in the staging folder: finished files and .part files."""
    total = 0
    for planned in plan.files:
        for path in (staging / planned.path, staging / (planned.path + ".part")):
            if path.exists():
                total += path.stat().st_size
    return total
