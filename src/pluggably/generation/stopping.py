"""The caller's stop sequences held on a remote model's answer. Vendors take only a few
(OpenAI 4, Gemini 5) and are sent only those; the gateway cuts the answer at every one
the caller sent, so the outcome is the same whichever model answers. Local runtimes
apply the stops themselves."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

from pluggably.providers.base import Completion, Delta, StreamEnd, StreamItem, Usage
from pluggably.stops import StopFilter, cut


def cut_completion(completion: Completion, stops: list[str]) -> Completion:
    """The answer up to the first stop sequence in it, if any (the upstream's usage stays:
    it is what the upstream produced)."""
    if not stops or not completion.text:
        return completion
    text, matched = cut(completion.text, stops)
    if matched is None:
        return completion
    return dataclasses.replace(completion, text=text, finish_reason="stop", stop_sequence=matched)


async def cut_stream(
    upstream: AsyncIterator[StreamItem],
    stops: list[str],
    prompt_tokens: Callable[[], int],
) -> AsyncIterator[StreamItem]:
    """``upstream`` with text that may begin a stop sequence held back, ending at the
    first match: the upstream is closed then (no more tokens are paid for), and since its
    own usage report would come only at its end, the usage is estimated (the deltas
    received, the prompt as ``prompt_tokens`` counts it)."""
    stopper = StopFilter(stops)
    received = 0
    try:
        async for item in upstream:
            if isinstance(item, StreamEnd):
                if tail := stopper.flush():
                    yield Delta(tail)
                yield item
                return
            if not isinstance(item, Delta):  # tool calls and reasoning are not cut
                yield item
                continue
            received += 1
            text, hit = stopper.feed(item.text)
            if text:
                yield Delta(text)
            if hit:
                usage = Usage(prompt_tokens(), received)
                yield StreamEnd("stop", usage, stop_sequence=stopper.matched)
                return
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]
