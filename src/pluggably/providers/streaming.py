"""The ``stream`` every HTTP provider shares: one streamed POST through the Upstream
client, read by the adapter's own frame reader, its items passed on as they come. Each
adapter says only where the request goes and how its frames read."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from pluggably.messages import Features
from pluggably.providers import errors
from pluggably.providers.base import Credential, ProviderCall, StreamItem
from pluggably.providers.sse import Event
from pluggably.providers.upstream import StatusMapper, Upstream


@dataclass(frozen=True)
class StreamRequest:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    from_status: StatusMapper = errors.from_status  # the vendor's error answers, mapped
    public_only: bool = False  # a user-supplied URL: connect to public addresses only


class StreamingProvider(ABC):
    name: str
    client: Upstream

    def unable(self, model: str, features: Features) -> str | None:
        """Why ``model`` cannot do what ``features`` ask; None: it can (the default:
        the vendor's API takes tools, JSON output and reasoning)."""
        return None

    def ignores(self, model: str, features: Features) -> str | None:
        """What of ``features`` ``model`` leaves out, as a warning; None: nothing."""
        return None

    async def stream(self, call: ProviderCall, credential: Credential) -> AsyncIterator[StreamItem]:
        request = await self._stream_request(call, credential)
        items = self.client.stream(
            request.url,
            provider=self.name,
            model=call.model,
            headers=request.headers,
            body=request.body,
            frames=lambda lines: self._frames(call, lines),
            from_status=request.from_status,
            public_only=request.public_only,
        )
        async with contextlib.aclosing(items):  # closes the upstream response with us
            async for item in items:
                yield item

    def _frame(self, call: ProviderCall, event: Event) -> Any:
        """A stream frame's JSON."""
        try:
            return orjson.loads(event.data)
        except ValueError:
            raise errors.malformed(self.name, call.model, "a stream frame is not JSON") from None

    @abstractmethod
    async def _stream_request(self, call: ProviderCall, credential: Credential) -> StreamRequest:
        """Where the streamed call goes, with what; raised errors end the stream before
        anything is sent."""

    @abstractmethod
    def _frames(self, call: ProviderCall, lines: AsyncIterator[str]) -> AsyncIterator[StreamItem]:
        """The deltas and the one StreamEnd that the lines of the upstream's answer say."""
