"""Request records: written when a generation starts and when it ends, each in its
own short transaction so a crash mid-request leaves a visible row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db import Database, utcnow
from pluggably.errors import RequestNotFound
from pluggably.generation.models import RequestRecord


class RequestRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self, user_id: str, modality: str, stream: bool) -> str:
        async with self.db.session() as session:
            record = RequestRecord(
                user_id=user_id,
                modality=modality,
                stream=stream,
                status="running",
                started_at=utcnow(),
            )
            session.add(record)
            await session.flush()
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
        async with self.db.session() as session:
            record = await session.get(RequestRecord, request_id)
            if record is None:
                return
            record.status, record.finished_at = status, utcnow()
            record.model, record.provider = model or record.model, provider or record.provider
            if error is not None:
                record.error_code, record.error_message = error[0], error[1][:1000]
            if usage is not None:
                record.prompt_tokens, record.completion_tokens = usage
            record.response = response

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
