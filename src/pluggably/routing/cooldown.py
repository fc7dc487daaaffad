"""Per-deployment cooldown: a target that failed retryably several times in a row is
skipped for a while, so a dead upstream does not cost every request a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Cooldowns:
    threshold: int = 3
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _until: dict[str, float] = field(default_factory=dict)

    def cooling(self, label: str) -> bool:
        return self._until.get(label, 0.0) > self.clock()

    MAX_TRACKED = 10_000

    def failed(self, label: str) -> None:
        if len(self._failures) + len(self._until) > self.MAX_TRACKED:
            self._prune()
        count = self._failures.get(label, 0) + 1
        self._failures[label] = count
        if count >= self.threshold:
            self._until[label] = self.clock() + self.cooldown_s
            self._failures[label] = 0

    def _prune(self) -> None:
        """Keys are user- and model-named: forget expired cooldowns and stray counts."""
        now = self.clock()
        self._until = {k: t for k, t in self._until.items() if t > now}
        self._failures.clear()

    def succeeded(self, label: str) -> None:
        self._failures.pop(label, None)
        self._until.pop(label, None)

    def order(self, labels: list[str]) -> list[int]:
        """Indexes of ``labels`` with those in cooldown moved to the back (never dropped:
        they remain the last resort); the order is otherwise kept."""
        return sorted(range(len(labels)), key=lambda i: self.cooling(labels[i]))
