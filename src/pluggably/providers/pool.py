"""The upstream HTTP client: several small connection pools used in turn. httpcore
looks through its pool's connections under one lock for every request, so a single
pool of hundreds of keep-alive connections costs more per request the busier it is;
shards keep each pool small (a no-database variant of bench/overhead.py went from 284
to 635 requests/s at concurrency 64 with 16 shards)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx


class ShardedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose requests are sent by one of ``shards`` clients in
    turn (every request, stream and helper method of httpx goes through ``send``)."""

    def __init__(self, shards: int, *, limits: httpx.Limits, **kwargs: Any) -> None:
        super().__init__(limits=limits, **kwargs)
        share = httpx.Limits(
            max_connections=_split(limits.max_connections, shards),
            max_keepalive_connections=_split(limits.max_keepalive_connections, shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        self._shards = [httpx.AsyncClient(limits=share, **kwargs) for _ in range(shards)]
        self._turn = itertools.cycle(self._shards)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        return await next(self._turn).send(request, **kwargs)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
        await super().aclose()


def _split(total: int | None, shards: int) -> int | None:
    return None if total is None else max(total // shards, 1)
