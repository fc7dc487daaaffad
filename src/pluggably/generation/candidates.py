"""The one candidate loop: each candidate of a plan is tried in order until one answers,
for JSON and streams alike, and what happens comes out as typed events.

A candidate's upstream is one iterator of items: queue and loading notices (local
models), text deltas, then the end (a ``StreamEnd`` or the whole ``Completion``). A
failure before the candidate answered falls back to the next one; a stream answers
with its first token (a failure after it is the stream's error event), a JSON request
only with its whole answer (any failure before that falls back)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pluggably.deltas import Assembly
from pluggably.errors import GatewayError, ProviderNotConfigured, UpstreamError
from pluggably.generation.events import (
    Completed,
    Event,
    Failed,
    LoadingModel,
    QueuePosition,
    Selected,
    TextDelta,
)
from pluggably.generation.live import LiveRequest, LiveRequests
from pluggably.generation.local_calls import completion_of, local_events
from pluggably.generation.outcomes import Outcomes
from pluggably.generation.plan import Plan, as_gateway_error, credential_for, scrubbed
from pluggably.generation.schemas import GenerateResponse
from pluggably.generation.stopping import cut_completion, cut_stream
from pluggably.lifecycle.admission import Reservation
from pluggably.lifecycle.local import Loading, LocalBackend, LocalEnd, Queued
from pluggably.providers.base import (
    Completion,
    Credential,
    Delta,
    Provider,
    ProviderCall,
    ReasoningDelta,
    StreamEnd,
    ToolCallDelta,
)
from pluggably.providers.directory import ProviderDirectory
from pluggably.routing.resolve import LOCAL, Target

Item = Queued | Loading | Delta | ToolCallDelta | ReasoningDelta | StreamEnd | Completion
Part = (Delta, ToolCallDelta, ReasoningDelta)  # the pieces of an answer


class Unanswered(Exception):
    """The candidate failed before it answered: the next one may be tried."""

    def __init__(self, error: GatewayError) -> None:
        self.error = error


class Candidates:
    def __init__(
        self,
        providers: ProviderDirectory,
        local: LocalBackend,
        outcomes: Outcomes,
        live: LiveRequests,
    ) -> None:
        self.providers, self.local, self.outcomes, self.live = providers, local, outcomes, live

    async def run(
        self, plan: Plan, live: LiveRequest, *, stream: bool
    ) -> AsyncGenerator[Event, None]:
        """The plan's events; they end without a final one when the request was
        cancelled between candidates."""
        error: GatewayError | None = None
        for target in plan.targets:
            plan.trying = target
            if live.cancel_requested:
                return
            try:
                attempt = self._attempt(plan, target, live, stream)
                async with contextlib.aclosing(attempt) as events:
                    async for event in events:
                        yield event
                return
            except Unanswered as failure:
                error = failure.error
                if self.outcomes.failed(plan, target, error):
                    continue
                break
        assert error is not None
        await self.outcomes.all_failed(plan, error)
        # No Selected came first: the id is here, to look the record up.
        yield Failed(error, request_id=plan.request_id)

    async def _attempt(
        self, plan: Plan, target: Target, live: LiveRequest, stream: bool
    ) -> AsyncGenerator[Event, None]:
        credential: Credential = {}
        items: AsyncIterator[Item] | None = None
        try:
            try:
                items, credential = await self._open(plan, target, stream)
                item = await anext(items)
                while isinstance(item, Queued | Loading):  # waiting: before the first token
                    yield self._notice(plan, target, live, item)
                    item = await anext(items)
                if not stream:  # the whole answer, or a failure that falls back
                    completion = await self._whole(plan, target, item, items)
                    live.answered()
                    await _close(items)  # a local model's slot goes back now
                    output = await self.outcomes.output(plan, completion)
            except Exception as raw:
                error = as_gateway_error(raw, plan, target)
                raise Unanswered(scrubbed(error, credential)) from None
            plan.answered_by(target)
            if not stream:
                response = self.outcomes.response(plan, target, completion, output)
                await self.outcomes.completed(plan, target, response)
                yield Completed(response)
                return
            yield self._selected(plan, target)
            relay = self._relay(plan, target, item, items, credential)
            async with contextlib.aclosing(relay) as events:
                async for event in events:
                    yield event
        finally:
            if items is not None:
                await _close(items)

    async def _whole(
        self, plan: Plan, target: Target, item: Item, items: AsyncIterator[Item]
    ) -> Completion:
        """A JSON answer: the deltas of a local model (text for listeners), then its end."""
        while isinstance(item, Part):
            if isinstance(item, Delta):
                self.live.delta(plan.request_id, item.text)
            item = await anext(items)
        if not isinstance(item, Completion):  # pragma: no cover - adapters end with one
            raise UpstreamError(f"{target.label} ended without an answer.")
        return item

    async def _relay(
        self,
        plan: Plan,
        target: Target,
        item: Item,
        items: AsyncIterator[Item],
        credential: Credential,
    ) -> AsyncGenerator[Event, None]:
        """A stream after its candidate answered: deltas, then the end."""
        whole = Assembly()
        first_token_ms = (time.perf_counter() - plan.started) * 1000
        try:
            while isinstance(item, Part):
                if isinstance(item, Delta):
                    whole.text.append(item.text)
                    self.live.delta(plan.request_id, item.text)
                    yield TextDelta(item.text)
                else:
                    whole.add(item)
                    yield item
                item = await anext(items)
            if not isinstance(item, StreamEnd | Completion):  # pragma: no cover
                raise UpstreamError(f"{target.label} ended without an answer.")
        except Exception as raw:
            exc = scrubbed(as_gateway_error(raw, plan, target), credential)
            await self.outcomes.broke_off(plan, target, exc)
            yield Failed(exc)
            return
        finally:
            await _close(items)
        completion = Completion(
            text="".join(whole.text),
            finish_reason=item.finish_reason,
            usage=item.usage,
            stop_sequence=item.stop_sequence,
            # A runtime that parses its calls at the end gives them whole with its end.
            tool_calls=whole.tool_calls
            or (item.tool_calls if isinstance(item, Completion) else []),
            reasoning=whole.reasoning_text,
            reasoning_signature=whole.signature,
        )
        # The answer is in: its writes (files, turn, record) run to their end in a task
        # of their own, even when the client leaves or cancels now; the stream then ends
        # as completed, not also as a cancelled copy of the answer.
        writes = asyncio.ensure_future(self._answered(plan, target, completion, first_token_ms))
        try:
            response = await asyncio.shield(writes)
        except asyncio.CancelledError:
            await asyncio.wait({writes})
            raise
        yield Completed(response)

    async def _answered(
        self, plan: Plan, target: Target, completion: Completion, first_token_ms: float
    ) -> GenerateResponse:
        output = await self.outcomes.output(plan, completion)
        response = self.outcomes.response(plan, target, completion, output, first_token_ms)
        await self.outcomes.completed(plan, target, response)
        return response

    def _notice(
        self, plan: Plan, target: Target, live: LiveRequest, item: Queued | Loading
    ) -> QueuePosition | LoadingModel:
        notice: QueuePosition | LoadingModel
        if isinstance(item, Queued):
            notice = QueuePosition(plan.request_id, item.position, item.estimated_wait_ms)
            live.status, live.position = "queued", item.position
        else:
            notice = LoadingModel(plan.request_id, target.label)
            live.status, live.position = "running", None
        live.publish(notice)
        return notice

    def _selected(self, plan: Plan, target: Target) -> Selected:
        return Selected(
            request_id=plan.request_id,
            model=target.label,
            provider=target.provider,
            modality=plan.modality,
            selection=plan.selection(target),
            reported_model=plan.reported_model(target),
        )

    # upstreams
    async def _open(
        self, plan: Plan, target: Target, stream: bool
    ) -> tuple[AsyncIterator[Item], Credential]:
        if target.provider == LOCAL:
            return self._local(plan, target), {}
        provider = self._provider(plan, target)
        credential = credential_for(self.providers, plan.credentials, target.provider)
        call = ProviderCall(
            target.model,
            plan.messages,
            plan.parameters,
            plan.modality,
            plan.features,
            texts=plan.texts,
        )
        beyond = _beyond(provider, plan.stops)
        if stream:
            upstream = provider.stream(call, credential)
            if beyond:
                upstream = cut_stream(upstream, plan.stops, plan.prompt_estimate)
            return upstream, credential
        return _whole_answer(provider, call, credential, plan.stops if beyond else []), credential

    async def _local(self, plan: Plan, target: Target) -> AsyncIterator[Item]:
        # Closed on the way out, not left to the garbage collector: closing it is what
        # gives the model's slot back.
        with self.place(plan, target):
            async with contextlib.aclosing(local_events(self.local, plan, target)) as events:
                async for event in events:
                    yield completion_of(event.result) if isinstance(event, LocalEnd) else event

    def place(self, plan: Plan, target: Target) -> Reservation:
        """The request's place for a local target, taken now on its caller's share of
        the model's queue (a refusal raises here, before anything waits); kept if a
        stream's ``admit`` took it already."""
        scheduler = self.local.scheduler
        return scheduler.reserve(target.model, plan.request_id, plan.principal.user_id)

    def _provider(self, plan: Plan, target: Target) -> Provider:
        provider = self.providers.get(target.provider)
        assert provider is not None
        if plan.modality not in provider.modalities:
            raise ProviderNotConfigured(
                f"{target.provider} does not generate {plan.modality} here."
            )
        return provider


async def _whole_answer(
    provider: Provider, call: ProviderCall, credential: Credential, stops: list[str]
) -> AsyncIterator[Any]:
    """A remote JSON answer as the one item of its upstream, cut at the caller's stop
    sequences the upstream did not apply itself."""
    yield cut_completion(await provider.complete(call, credential), stops)


async def _close(items: AsyncIterator[Item]) -> None:
    await items.aclose()  # type: ignore[attr-defined]


def _beyond(provider: Provider, stops: list[str]) -> bool:
    """More stop sequences than the upstream applies itself: the gateway cuts the answer
    (local runtimes hold every stop themselves)."""
    return provider.max_stops is not None and len(stops) > provider.max_stops
