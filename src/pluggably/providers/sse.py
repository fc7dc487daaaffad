"""Reading server-sent events from the lines of an upstream response."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str | None
    data: str


async def events(lines: AsyncIterable[str]) -> AsyncIterator[Event]:
    """Yield each event (``event:``/``data:`` lines up to a blank line); comments and
    other fields are skipped. Multi-line data is joined with newlines."""
    name: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield Event(name, "\n".join(data))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if data:
        yield Event(name, "\n".join(data))
