"""All queries on provider credentials."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.credentials.models import ProviderCredential


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_user(self, user_id: str) -> Sequence[ProviderCredential]:
        query = (
            select(ProviderCredential)
            .where(ProviderCredential.user_id == user_id)
            .order_by(ProviderCredential.provider)
        )
        return (await self.session.execute(query)).scalars().all()

    async def get(self, user_id: str, provider: str) -> ProviderCredential | None:
        query = select(ProviderCredential).where(
            ProviderCredential.user_id == user_id, ProviderCredential.provider == provider
        )
        return await self.session.scalar(query)

    async def all_sealed_with_other_keys(self, key_id: str) -> Sequence[ProviderCredential]:
        query = select(ProviderCredential).where(ProviderCredential.key_id != key_id)
        return (await self.session.execute(query)).scalars().all()

    async def add(self, row: ProviderCredential) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete(self, row: ProviderCredential) -> None:
        await self.session.delete(row)
        await self.session.flush()
