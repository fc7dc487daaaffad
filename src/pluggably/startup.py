"""What the server must finish before it is ready, and the one-time startup work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pluggably.config import Settings


@dataclass
class Readiness:
    """Named startup steps still pending. ``/ready`` reports them until each is done."""

    pending: set[str] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, *steps: str) -> None:
        self.pending.update(steps)
        self.ready.clear()

    def done(self, step: str) -> None:
        self.pending.discard(step)
        if not self.pending:
            self.ready.set()

    @property
    def is_ready(self) -> bool:
        return not self.pending


def prepare_directories(settings: Settings) -> None:
    """Create the data directories (never at import time). The data dir holds
    databases and user artifacts, so it is private to the server's user."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.models_dir.mkdir(exist_ok=True)
    settings.artifacts_dir.mkdir(exist_ok=True)
