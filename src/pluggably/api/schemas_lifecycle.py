"""Bodies of the local model residency routes (``api/lifecycle.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class LoadedModel(BaseModel):
    model_id: str
    runtime: str
    loaded_at: datetime
    last_used_at: datetime
    pinned: bool
    memory_bytes: int
    in_flight: int
    queue_depth: int
    expires_at: datetime | None


class LoadedList(BaseModel):
    models: list[LoadedModel]


class LoadRequest(BaseModel):
    wait: bool = False


class Residency(BaseModel):
    model_id: str
    status: Literal["loading", "loaded", "unloaded"]
