"""Request records, written off the request path.

Starting and finishing a generation only queue a row change; one background writer
commits everything queued every few milliseconds in a single transaction. On
SQLite, per-request write transactions convoyed on the one write lock and capped
throughput (bench/overhead.py: 129 → 225 requests/s without them). Reads apply
queued changes in memory, so a client reading its own request right after an
answer sees it; a crash
loses at most one batch interval of rows, and rows left 'running' by a crash are
marked interrupted at the next start."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.cluster.models import Replica
from pluggably.db import DATABASE_DOWN, Database, utcnow
from pluggably.errors import RequestNotFound
from pluggably.generation.models import RequestRecord
from pluggably.ids import new_id
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.records")
BATCH_INTERVAL_S = 0.02
RETRY_INTERVAL_S = 0.5  # after the database did not take a batch (DATABASE_DOWN)
ACTIVE = ("queued", "running")
_INTERRUPTED = {
    "status": "failed",
    "error_code": "interrupted",
    "error_message": "The server running this request stopped; send it again.",
}
# Every row of a multi-row INSERT names the same columns: those a request never set are
# NULL.
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(c.name for c in RequestRecord.__table__.columns)


class RequestRecords:
    def __init__(
        self, db: Database, interval_s: float = BATCH_INTERVAL_S, *, replica_id: str | None = None
    ) -> None:
        self.db = db
        self.replica_id = replica_id  # the replica that runs what starts here (cluster/)
        self.interval_s = interval_s
        self._inserts: dict[str, dict[str, Any]] = {}
        self._updates: list[tuple[str, dict[str, Any]]] = []
        # The batch being written: visible to get() until its transaction commits.
        self._writing: tuple[dict[str, dict[str, Any]], list[tuple[str, dict[str, Any]]]] = (
            {},
            [],
        )
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # lifecycle
    def start_writer(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="request-records")

    async def close(self) -> None:
        """Write what is queued and stop. The writer is asked to stop, never cancelled:
        a flush cut off mid-transaction would leave SQLite's write lock held."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            if not self._closing:
                await asyncio.sleep(self.interval_s)  # let a batch gather
            self._wake.clear()
            try:
                await self.flush()
            except DATABASE_DOWN as exc:
                # Locked by another process or unreachable: the batch was put back;
                # try again shortly rather than drop the rows (or spin on the error).
                log.warning("request_records_flush_retry", error=type(exc).__name__)
                self._wake.set()
                await asyncio.sleep(RETRY_INTERVAL_S)
            except Exception:
                log.exception("request_records_flush_failed")

    # writes (queued)
    def start(
        self,
        user_id: str,
        modality: str,
        stream: bool,
        token_id: str | None = None,
        request_id: str | None = None,
    ) -> str:
        request_id = request_id or new_id("req")
        self._inserts[request_id] = {
            "id": request_id,
            "user_id": user_id,
            "token_id": token_id,
            "replica_id": self.replica_id,
            "modality": modality,
            "stream": stream,
            "status": "running",
            "created_at": utcnow(),
            "started_at": utcnow(),
        }
        self._wake.set()
        return request_id

    async def finish(
        self,
        request_id: str,
        *,
        status: str,
        model: str | None = None,
        provider: str | None = None,
        error: tuple[str, str] | None = None,
        usage: tuple[int, int] | None = None,
        response: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "response": response}
        if cost_usd is not None:
            values["cost_usd"] = cost_usd
        if latency_ms is not None:
            values["latency_ms"] = round(latency_ms, 3)
        if model is not None:
            values["model"] = model
        if provider is not None:
            values["provider"] = provider
        if error is not None:
            values["error_code"], values["error_message"] = error[0], error[1][:1000]
        if usage is not None:
            values["prompt_tokens"], values["completion_tokens"] = usage
        pending = self._inserts.get(request_id)
        if pending is not None:
            pending.update(values)  # never written yet: one INSERT carries both
        else:
            self._updates.append((request_id, values))
        self._wake.set()
        if self._task is None:  # no writer (tools, tests of this class): write now
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            inserts, self._inserts = self._inserts, {}
            updates, self._updates = self._updates, []
            if not inserts and not updates:
                return
            # Until committed, reads see this batch from memory (get() looks here too).
            self._writing = (inserts, updates)
            try:
                async with self.db.session() as session:
                    if inserts:  # one multi-row INSERT (Core: no unit of work per row)
                        rows = [_EMPTY_ROW | values for values in inserts.values()]
                        await session.execute(insert(RequestRecord), rows)
                    for request_id, values in updates:
                        await session.execute(
                            update(RequestRecord)
                            .where(RequestRecord.id == request_id)
                            .values(**values)
                        )
            except DATABASE_DOWN:
                # Nothing was written: the batch goes back in front of what came since
                # (a finish() meanwhile queued an update, which must apply after it).
                self._inserts = {**inserts, **self._inserts}
                self._updates = updates + self._updates
                raise
            finally:
                self._writing = ({}, [])

    # reads and recovery
    async def mark_interrupted(self, *, alone: bool = True) -> int:
        """At startup: requests left queued or running by a crash will never finish.
        ``alone`` (SQLite, one process): every such request. Among replicas: those
        of no live replica (no ``replicas`` row); a dead replica's are marked by the
        survivor that notices it (cluster/replicas.py)."""
        async with self.db.session() as session:
            query = update(RequestRecord).where(RequestRecord.status.in_(ACTIVE))
            if not alone:
                query = query.where(
                    or_(
                        RequestRecord.replica_id.is_(None),
                        RequestRecord.replica_id.not_in(select(Replica.id)),
                    )
                )
            result = await session.execute(query.values(**_INTERRUPTED, finished_at=utcnow()))
            return int(getattr(result, "rowcount", 0) or 0)

    async def interrupt(self, session: AsyncSession, replica_id: str) -> int:
        """The queued and running requests of a replica that died."""
        result = await session.execute(
            update(RequestRecord)
            .where(RequestRecord.replica_id == replica_id, RequestRecord.status.in_(ACTIVE))
            .values(**_INTERRUPTED, finished_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def get(self, session: AsyncSession, user_id: str, request_id: str) -> RequestRecord:
        """The record as it is now: queued changes not yet written are applied in memory
        (a read never writes: the caller's transaction must not wait on the writer)."""
        # Everything not yet committed, taken before the read below awaits: a batch may
        # move from the queue to the writer (and commit) meanwhile.
        writing_inserts, writing_updates = self._writing
        queued_updates = list(self._updates)
        pending = self._inserts.get(request_id) or writing_inserts.get(request_id)
        record: RequestRecord | None
        if pending is not None:
            record = RequestRecord(**pending)
        else:
            record = await session.get(RequestRecord, request_id)
            if record is not None:
                session.expunge(record)  # shown updated, never flushed from here
        changes = [v for rid, v in [*writing_updates, *queued_updates] if rid == request_id]
        if record is not None:
            for values in changes:
                for key, value in values.items():
                    setattr(record, key, value)
        if record is None or record.user_id != user_id:  # another user's request is a 404
            raise RequestNotFound(f"No request '{request_id}'.")
        return record
