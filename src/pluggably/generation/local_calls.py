"""The local side of a generation: a plan's local target run through the scheduler,
its result as a Completion."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator

from pluggably.generation.plan import Plan
from pluggably.lifecycle.local import LocalBackend, LocalEnd, LocalEvent, Queued
from pluggably.providers.base import Completion, Usage
from pluggably.routing.resolve import Target
from pluggably.runtimes.base import LocalCall, LocalResult


async def local_events(
    local: LocalBackend, plan: Plan, target: Target
) -> AsyncGenerator[LocalEvent, None]:
    """The target's events; the plan keeps the queue position and timings."""
    spec = plan.local_specs[target.model]
    call = LocalCall(plan.messages, plan.parameters, plan.modality, plan.features, texts=plan.texts)
    # Closed with this generator (not left to the garbage collector): that is what gives
    # the model's slot back when a consumer stops at the end event.
    async with contextlib.aclosing(local.run(spec, call, plan.request_id)) as events:
        async for event in events:
            if isinstance(event, Queued):
                plan.position = event.position
                plan.queued.set()
            else:
                plan.position = None
            if isinstance(event, LocalEnd):
                plan.queue_ms, plan.load_ms = round(event.queue_ms, 2), round(event.load_ms, 2)
            yield event


def usage_of(result: LocalResult) -> Usage | None:
    if not (result.prompt_tokens or result.completion_tokens):
        return None
    return Usage(result.prompt_tokens, result.completion_tokens)


def completion_of(result: LocalResult) -> Completion:
    return Completion(
        text=result.text,
        finish_reason=result.finish_reason,
        stop_sequence=result.stop_sequence,
        usage=usage_of(result),
        images=[base64.b64encode(png).decode() for png in result.images],
        mesh=base64.b64encode(result.mesh).decode() if result.mesh is not None else None,
        mesh_format=result.mesh_format,
        preview=result.preview,
        tool_calls=list(result.tool_calls),
        reasoning=result.reasoning,
        embeddings=result.embeddings,
    )
