"""What one generation reports as it runs: the typed events of the candidate loop. The
JSON path keeps the last one, the native stream (api/) and each surface render them in
their own wire format, and listeners of a request in flight receive them as they come."""

from __future__ import annotations

from dataclasses import dataclass

# Re-exported: events too, as the upstream gives them.
from pluggably.deltas import ReasoningDelta as ReasoningDelta
from pluggably.deltas import ToolCallDelta as ToolCallDelta
from pluggably.errors import GatewayError
from pluggably.generation.schemas import GenerateResponse, Selection


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Waiting for a place in a local model's queue."""

    request_id: str
    position: int
    estimated_wait_ms: int | None


@dataclass(frozen=True, slots=True)
class LoadingModel:
    """The local model is being loaded before it answers."""

    request_id: str
    model: str  # the target's label


@dataclass(frozen=True, slots=True)
class Selected:
    """A candidate answers: from here on nothing falls back to the next one."""

    request_id: str
    model: str  # the served model's label
    provider: str
    modality: str
    selection: Selection
    reported_model: str  # the model as the caller named it (Plan.reported_model)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Completed:
    response: GenerateResponse


@dataclass(frozen=True, slots=True)
class Failed:
    """The generation ended with an error. ``request_id`` is set when no ``Selected``
    came first (every candidate failed), so a caller can still look the record up."""

    error: GatewayError
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """A request's status, for its listeners: where they join, and its final one."""

    request_id: str
    status: str


Notice = QueuePosition | LoadingModel
Event = (
    QueuePosition
    | LoadingModel
    | Selected
    | TextDelta
    | ToolCallDelta
    | ReasoningDelta
    | Completed
    | Failed
)
LiveEvent = QueuePosition | LoadingModel | TextDelta | Status
