"""What residency reports of one local model: the registry shows it in listings and
refuses to delete a model in use (it reads this through its own RuntimeStatus
protocol, so it does not import lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RuntimeState:
    status: str = "unloaded"  # unloaded | loading | loaded | busy
    queue_depth: int = 0
    loaded_at: datetime | None = None
    memory_bytes: int | None = None
    in_use: bool = False  # loaded, or requests waiting for it
