"""Bodies of the local model residency routes (API.md §4): kept with the scheduler they
describe so that the client reads them without the server's routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field


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

    # The same facts under the names the PlugAI clients read.
    @computed_field(description="Same as pinned.")  # type: ignore[prop-decorator]
    @property
    def is_pinned(self) -> bool:
        return self.pinned

    @computed_field(description="in_flight > 0.")  # type: ignore[prop-decorator]
    @property
    def is_busy(self) -> bool:
        return self.in_flight > 0

    @computed_field(description="Same as in_flight.")  # type: ignore[prop-decorator]
    @property
    def busy_count(self) -> int:
        return self.in_flight


class LoadedList(BaseModel):
    models: list[LoadedModel]


class LoadRequest(BaseModel):
    wait: bool = False


class UnloadRequest(BaseModel):
    force: bool = Field(
        default=False,
        description="Same as the query's force (the PlugAI Dart client sends it here).",
    )


class Residency(BaseModel):
    model_id: str
    status: Literal["loading", "loaded", "unloaded"]
