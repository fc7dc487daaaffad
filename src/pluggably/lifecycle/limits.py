"""The limits of local model serving, read by residency (how many models, how much
memory, how long an idle one stays) and by admission (slots and queue sizes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SchedulerLimits:
    max_loaded_models: int = 2
    memory_budget_bytes: int | None = None
    keep_alive_s: float | None = 300.0  # None: never unload for idleness
    max_queue_depth: int = 16
    # Waiting requests of one user per model; None: a quarter of max_queue_depth (at
    # least 1). Only requests that name their user (every request of the API does).
    max_queue_per_user: int | None = None
    parallel: int = 1
    # False: this process loads no model (``local_models: false``, every worker of
    # ``serve --workers``); a request for one is refused with a message saying so.
    enabled: bool = True
