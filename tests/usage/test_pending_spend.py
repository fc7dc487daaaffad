"""Budget spends batched before they are written (usage/pending_spend.py)."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import OperationalError

from pluggably.usage.pending_spend import Key, PendingSpends

DAY: Key = ("user:usr_1", "budget_day", 0)
WEEK: Key = ("user:usr_1", "budget_week", 0)


async def test_spends_close_together_are_one_write_and_count_until_committed() -> None:
    written: list[dict[Key, float]] = []
    gate = asyncio.Event()

    async def write(spent: dict[Key, float]) -> None:
        await gate.wait()
        written.append(dict(spent))

    spends = PendingSpends(write)
    spends.add([DAY, WEEK], 0.5)
    spends.add([DAY], 0.25)
    await asyncio.sleep(0.05)  # the batch is being written, not yet committed
    assert spends.pending(DAY) == 0.75
    gate.set()
    await asyncio.sleep(0.01)
    assert written == [{DAY: 0.75, WEEK: 0.5}]
    assert spends.pending(DAY) == 0.0


async def test_shutdown_during_a_write_loses_nothing() -> None:
    written: list[dict[Key, float]] = []

    async def write(spent: dict[Key, float]) -> None:
        await asyncio.sleep(0.05)
        written.append(dict(spent))

    spends = PendingSpends(write)
    spends.add([DAY], 1.0)
    await asyncio.sleep(0.03)  # the first batch is in flight
    spends.add([DAY], 2.0)
    await spends.close()
    assert sum(batch[DAY] for batch in written) == 3.0


async def test_a_batch_the_database_refused_is_written_next_time() -> None:
    calls: list[dict[Key, float]] = []

    async def write(spent: dict[Key, float]) -> None:
        calls.append(dict(spent))
        if len(calls) == 1:
            raise OperationalError("UPDATE", None, OSError("down"))

    spends = PendingSpends(write)
    spends.add([DAY], 1.0)
    await asyncio.sleep(0.05)  # its batch was refused: kept, still counted
    assert len(calls) == 1
    assert spends.pending(DAY) == 1.0
    await spends.close()
    assert calls[-1] == {DAY: 1.0}
