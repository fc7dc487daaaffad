"""All queries of the registry."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.db.base import utcnow
from pluggably.registry.models import Model, ModelDefault, ModelDoc, ModelSchema


class RegistryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, model_id: str) -> Model | None:
        return await self.session.get(Model, model_id)

    async def page(
        self,
        *,
        modalities: Sequence[str] | None,
        provider: str | None,
        status: str | None,
        q: str | None,
        after: str | None,
        limit: int,
    ) -> Sequence[Model]:
        query = select(Model).order_by(Model.id).limit(limit)
        if modalities is not None:
            query = query.where(Model.modality.in_(modalities))
        if provider:
            query = query.where(Model.provider == provider)
        if status:
            query = query.where(Model.status == status)
        if q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            query = query.where(
                or_(Model.id.ilike(pattern, escape="\\"), Model.name.ilike(pattern, escape="\\"))
            )
        if after is not None:
            query = query.where(Model.id > after)
        return (await self.session.execute(query)).scalars().all()

    async def touch(self, model_id: str) -> None:
        await self.session.execute(
            update(Model).where(Model.id == model_id).values(last_used_at=utcnow())
        )

    async def all(self) -> Sequence[Model]:
        return (await self.session.execute(select(Model).order_by(Model.id))).scalars().all()

    async def add(self, row: Model | ModelSchema | ModelDoc | ModelDefault) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete(self, model: Model) -> None:
        await self.session.delete(model)
        await self.session.flush()

    async def latest_schema(self, model_id: str) -> ModelSchema | None:
        query = (
            select(ModelSchema)
            .where(ModelSchema.model_id == model_id)
            .order_by(ModelSchema.version.desc())
            .limit(1)
        )
        return await self.session.scalar(query)

    async def doc(self, model_id: str) -> ModelDoc | None:
        return await self.session.get(ModelDoc, model_id)

    async def defaults(self) -> dict[str, str]:
        rows = (await self.session.execute(select(ModelDefault))).scalars().all()
        return {row.modality: row.model_id for row in rows}

    async def set_default(self, modality: str, model_id: str) -> None:
        row = await self.session.get(ModelDefault, modality)
        if row is None:
            self.session.add(ModelDefault(modality=modality, model_id=model_id))
        else:
            row.model_id = model_id
        await self.session.flush()

    async def clear_default(self, model_id: str) -> None:
        await self.session.execute(delete(ModelDefault).where(ModelDefault.model_id == model_id))
