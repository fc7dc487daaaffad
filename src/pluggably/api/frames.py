"""The native stream's frames (API.md §3): the generation's typed events as the JSON
objects a ``data:`` line carries."""

from __future__ import annotations

from typing import Any

from pluggably.generation.events import (
    Completed,
    Failed,
    LoadingModel,
    QueuePosition,
    ReasoningDelta,
    Selected,
    Status,
    TextDelta,
    ToolCallDelta,
)


def native_frame(event: object) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        return {"choices": [{"delta": {"content": event.text}}]}
    if isinstance(event, ToolCallDelta):
        return {"choices": [{"delta": {"tool_calls": [tool_call_fragment(event)]}}]}
    if isinstance(event, ReasoningDelta):
        delta: dict[str, Any] = {"reasoning": event.text}
        if event.signature:
            delta["reasoning_signature"] = event.signature
        return {"choices": [{"delta": delta}]}
    if isinstance(event, Selected):
        return {
            "event": "model_selected",
            "request_id": event.request_id,
            "model": event.model,
            "provider": event.provider,
            "modality": event.modality,
            "fallback_used": event.selection.fallback_used,
            "fallback_reason": event.selection.fallback_reason,
        }
    if isinstance(event, Completed):
        complete = event.response.model_dump(mode="json")
        complete["output"].pop("text", None)  # already sent as deltas
        return {"event": "complete", **complete}
    if isinstance(event, Failed):
        frame = {"event": "error", "code": event.error.code, "message": event.error.message}
        if event.request_id is not None:
            frame["request_id"] = event.request_id
        return frame
    if isinstance(event, QueuePosition):
        return {
            "event": "queued",
            "request_id": event.request_id,
            "queue_position": event.position,
            "estimated_wait_ms": event.estimated_wait_ms,
        }
    if isinstance(event, LoadingModel):
        return {"event": "loading", "request_id": event.request_id, "model": event.model}
    if isinstance(event, Status):
        return {"event": "status", "request_id": event.request_id, "status": event.status}
    raise TypeError(f"no native frame for {type(event).__name__}")


def tool_call_fragment(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's ``delta.tool_calls[]`` item: id, type and name in the first fragment."""
    fragment: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        fragment["id"] = delta.id
        fragment["type"] = "function"
    function: dict[str, Any] = {"arguments": delta.arguments}
    if delta.name is not None:
        function["name"] = delta.name
    fragment["function"] = function
    return fragment
