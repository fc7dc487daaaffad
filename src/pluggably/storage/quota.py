"""How much of the disk models use, and whether more fits."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from pluggably.errors import StorageFull


def tree_size(path: Path) -> int:
    """Blocking: bytes under ``path`` (files only; symlinks not followed)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(base, name), follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class Quota:
    """The models directory's budget: an optional configured limit, and the disk's
    real free space, which always applies."""

    def __init__(self, models_dir: Path, limit_bytes: int | None) -> None:
        self.models_dir = models_dir
        self.limit_bytes = limit_bytes
        self._measured: tuple[float, int] = (-1e9, 0)

    async def used_bytes(self) -> int:
        used = await asyncio.to_thread(tree_size, self.models_dir)
        self._measured = (time.monotonic(), used)
        return used

    async def recent_used_bytes(self, max_age_s: float = 30.0) -> int:
        """For metrics scrapes: a measure at most ``max_age_s`` old (walks are costly)."""
        at, used = self._measured
        if time.monotonic() - at > max_age_s:
            used = await self.used_bytes()
        return used

    def disk_free(self) -> int:
        return shutil.disk_usage(self.models_dir).free

    async def ensure_room(self, needed: int, reserved: int = 0) -> None:
        """Raise 507 ``storage_full`` unless ``needed`` more bytes fit, beside the
        ``reserved`` bytes that running downloads will still write."""
        if self.limit_bytes is not None:
            used = await self.used_bytes()
            if used + reserved + needed > self.limit_bytes:
                raise StorageFull(
                    f"This download needs {_mb(needed)} but the model storage quota has "
                    f"{_mb(max(0, self.limit_bytes - used - reserved))} left "
                    f"(limit {_mb(self.limit_bytes)}); free space with POST /v1/storage/cleanup "
                    "or raise PLUGGABLY_STORAGE_LIMIT_BYTES."
                )
        free = await asyncio.to_thread(self.disk_free)
        if free - reserved < needed:
            raise StorageFull(
                f"This download needs {_mb(needed)} but the disk has only "
                f"{_mb(free - reserved)} free."
            )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
