"""One local generation as a stream of events: queue positions while the request
waits, a loading notice when its model must load, text pieces as the runtime produces
them (from its worker thread), then the result. Cancellation (the consuming task is
cancelled: client gone, POST …/cancel) leaves the queue, or sets the runtime's cancel
event and waits for the runtime to stop before the slot frees."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from pluggably.deltas import ReasoningDelta, ToolCallDelta
from pluggably.lifecycle.resident import Slot
from pluggably.lifecycle.scheduler import Scheduler
from pluggably.providers.base import Delta
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, Piece


@dataclass(frozen=True)
class Queued:
    position: int
    estimated_wait_ms: int | None


@dataclass(frozen=True)
class Loading:
    model: str


@dataclass(frozen=True)
class LocalEnd:
    result: LocalResult
    queue_ms: float
    load_ms: float
    generation_s: float


LocalEvent = Queued | Loading | Delta | ToolCallDelta | ReasoningDelta | LocalEnd


class LocalBackend:
    def __init__(self, scheduler: Scheduler, metrics: Any = None) -> None:
        self.scheduler = scheduler
        self.metrics = metrics

    async def run(
        self, spec: ModelSpec, call: LocalCall, request_id: str
    ) -> AsyncGenerator[LocalEvent, None]:
        notices: asyncio.Queue[Queued | Loading] = asyncio.Queue()
        scheduler = self.scheduler

        def queued(position: int) -> None:
            notices.put_nowait(
                Queued(position, scheduler.estimated_wait_ms(spec.model_id, position))
            )

        holder = scheduler.slot(
            spec,
            request_id,
            listener=queued,
            on_loading=lambda: notices.put_nowait(Loading(spec.model_id)),
        )
        entering = asyncio.ensure_future(holder.__aenter__())
        slot: Slot | None = None
        try:
            while not entering.done():
                getter = asyncio.ensure_future(notices.get())
                try:
                    await asyncio.wait({entering, getter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()
                if getter.done() and not getter.cancelled():
                    notice = getter.result()
                    if not (entering.done() and isinstance(notice, Queued)):
                        yield notice
            while not notices.empty():  # a loading notice from the last instant
                notice = notices.get_nowait()
                if isinstance(notice, Loading):
                    yield notice
            slot = entering.result()
            async for event in self._generate(slot, call):
                yield event
        finally:
            if slot is not None:
                await holder.__aexit__(*sys.exc_info())
            elif not entering.done():
                entering.cancel()
                with contextlib.suppress(BaseException):
                    await entering

    async def _generate(self, slot: Slot, call: LocalCall) -> AsyncIterator[LocalEvent]:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Piece] = asyncio.Queue()
        runtime = slot.runtime
        started = time.perf_counter()

        def work() -> LocalResult:
            if call.modality != "text":
                return runtime.generate(call, cancel)
            stream = runtime.stream(call, cancel)
            while True:
                try:
                    piece = next(stream)
                except StopIteration as done:
                    result: LocalResult = done.value
                    return result
                loop.call_soon_threadsafe(pieces.put_nowait, piece)

        finished = loop.run_in_executor(slot.executor, work)
        try:
            while not finished.done():
                getter = asyncio.ensure_future(pieces.get())
                either: set[asyncio.Future[Any]] = {finished, getter}
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()
                if getter.done() and not getter.cancelled():
                    yield _item(getter.result())
            # Pieces are queued before the result is: whatever is left came first.
            while not pieces.empty():
                yield _item(pieces.get_nowait())
            result = finished.result()
        except BaseException:
            cancel.set()  # cancelled, or the consumer went away: stop the runtime
            await _settle(finished)
            raise
        took = time.perf_counter() - started
        self._measure(slot.spec, result, took)
        yield LocalEnd(result, slot.queue_ms, slot.load_ms, took)

    def _measure(self, spec: ModelSpec, result: LocalResult, seconds: float) -> None:
        if self.metrics is not None and result.completion_tokens and seconds > 0:
            rate = result.completion_tokens / seconds
            self.metrics.tokens_per_second.labels(spec.model_id).observe(rate)


async def _settle(finished: asyncio.Future[Any]) -> None:
    """Wait (even while being cancelled) for the worker thread to return."""
    while not finished.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(finished)
    if not finished.cancelled():
        finished.exception()


def _item(piece: Piece) -> Delta | ToolCallDelta | ReasoningDelta:
    """A runtime's piece as a stream item: text is a ``Delta``, the rest as it is."""
    return Delta(piece) if isinstance(piece, str) else piece
