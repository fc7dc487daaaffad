"""Request records: written when a generation starts and when it ends, each in its
own short transaction so a crash mid-request leaves a visible row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database, utcnow
from pluggably.errors import RequestNotFound
from pluggably.generation.models import RequestRecord
from pluggably.ids import new_id


class RequestRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(
        self, user_id: str, modality: str, stream: bool, session: AsyncSession | None = None
    ) -> str:
        if session is None:
            async with self.db.session() as own:
                return await self.start(user_id, modality, stream, own)
        record = RequestRecord(
            id=new_id("req"),
            user_id=user_id,
            modality=modality,
            stream=stream,
            status="running",
            started_at=utcnow(),
        )
        session.add(record)  # flushed with the caller's commit: no round trip of its own
        return record.id

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
    ) -> None:
        """One UPDATE: the hot path pays a single statement to close a record."""
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "response": response}
        if model is not None:
            values["model"] = model
        if provider is not None:
            values["provider"] = provider
        if error is not None:
            values["error_code"], values["error_message"] = error[0], error[1][:1000]
        if usage is not None:
            values["prompt_tokens"], values["completion_tokens"] = usage
        async with self.db.session() as session:
            await session.execute(
                update(RequestRecord).where(RequestRecord.id == request_id).values(**values)
            )

    async def mark_interrupted(self) -> int:
        """Requests left queued or running by a crash will never finish: say so."""
        async with self.db.session() as session:
            result = await session.execute(
                update(RequestRecord)
                .where(RequestRecord.status.in_(("queued", "running")))
                .values(
                    status="failed",
                    error_code="interrupted",
                    error_message="The server stopped while this request ran; send it again.",
                    finished_at=utcnow(),
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def get(self, session: AsyncSession, user_id: str, request_id: str) -> RequestRecord:
        record = await session.get(RequestRecord, request_id)
        if record is None or record.user_id != user_id:  # another user's request is a 404
            raise RequestNotFound(f"No request '{request_id}'.")
        return record
