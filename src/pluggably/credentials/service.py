"""Users' provider credentials: validated, sealed, masked on every read, and
resolved for a request (the user's own, else a server-wide key where allowed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.config import ProviderSettings
from pluggably.credentials.models import ProviderCredential
from pluggably.credentials.providers import build_payload
from pluggably.credentials.repository import CredentialRepository
from pluggably.credentials.schemas import ProviderKeyCreate
from pluggably.credentials.vault import Sealed, Vault
from pluggably.db import utcnow
from pluggably.errors import CredentialUnreadable, NotFound
from pluggably.ids import new_id


def _aad(row: ProviderCredential) -> str:
    # Binds the ciphertext to its row: a sealed value moved elsewhere does not open.
    return f"provider_credential|{row.id}|{row.user_id}|{row.provider}"


@dataclass
class RotationReport:
    resealed: int = 0
    unreadable: list[str] = field(default_factory=list)  # credential ids


@dataclass
class CredentialService:
    vault: Vault
    server_keys: dict[str, ProviderSettings]
    server_keys_allowed: list[str]

    async def put(
        self, session: AsyncSession, principal: Principal, body: ProviderKeyCreate
    ) -> ProviderCredential:
        """Store (or replace) the caller's credential for ``body.provider``."""

        def reveal(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        payload, masked = build_payload(
            body.provider.lower(),
            body.credential_type,
            api_key=reveal(body.api_key),
            endpoint=body.endpoint,
            oauth_token=reveal(body.oauth_token),
            service_account_json=reveal(body.service_account_json),
        )
        provider = body.provider.lower()
        repo = CredentialRepository(session)
        row = await repo.get(principal.user_id, provider)
        if row is None:
            row = ProviderCredential(id=new_id("pk"), user_id=principal.user_id, provider=provider)
            self._fill(row, body, payload, masked)
            try:
                async with session.begin_nested():
                    await repo.add(row)
                return row
            except IntegrityError:  # a concurrent request stored one first: replace it
                row = await repo.get(principal.user_id, provider)
                assert row is not None
        self._fill(row, body, payload, masked)
        await session.flush()
        return row

    def _fill(
        self, row: ProviderCredential, body: ProviderKeyCreate, payload: dict[str, Any], masked: str
    ) -> None:
        row.credential_type, row.label, row.masked_key = body.credential_type, body.label, masked
        sealed = self.vault.seal(payload, _aad(row))
        row.key_id, row.ciphertext = sealed.key_id, sealed.blob
        row.updated_at = utcnow()

    async def list(
        self, session: AsyncSession, principal: Principal
    ) -> Sequence[ProviderCredential]:
        return await CredentialRepository(session).of_user(principal.user_id)

    async def delete(
        self, session: AsyncSession, principal: Principal, provider: str
    ) -> ProviderCredential:
        """Remove the caller's credential for ``provider``; answers the removed row."""
        repo = CredentialRepository(session)
        row = await repo.get(principal.user_id, provider.lower())
        if row is None:
            raise NotFound(f"You have no stored credential for '{provider}'.")
        await repo.delete(row)
        return row

    async def resolve(
        self, session: AsyncSession, principal: Principal, username: str | None, provider: str
    ) -> dict[str, Any] | None:
        """The secret payload to call ``provider`` with for this user, or None.

        A user's own credential always wins; a server-wide key is used only for users
        the operator allows (``server_keys_allowed``). An unreadable ciphertext is an
        error, never silently skipped in favour of another key.
        """
        snapshot = await self.snapshot(session, principal, username)
        return snapshot.resolve(provider)

    async def snapshot(
        self, session: AsyncSession, principal: Principal, username: str | None
    ) -> CredentialSnapshot:
        """Everything one request may need, read in one query; decrypted on use."""
        rows = {
            r.provider: r for r in await CredentialRepository(session).of_user(principal.user_id)
        }
        server = self._may_use_server_keys(principal, username)
        return CredentialSnapshot(self, rows, server)

    def _may_use_server_keys(self, principal: Principal, username: str | None) -> bool:
        allowed = set(self.server_keys_allowed)
        return (
            "*" in allowed
            or ("@admins" in allowed and principal.role == "admin")
            or (username is not None and username in allowed)
        )

    async def rotate(self, session: AsyncSession) -> RotationReport:
        """Re-seal every credential under the active key (after ``keys.add_key``)."""
        report = RotationReport()
        repo = CredentialRepository(session)
        for row in await repo.all_sealed_with_other_keys(self.vault.keyring.active.key_id):
            try:
                payload = self.vault.open(Sealed(row.key_id, row.ciphertext), _aad(row))
            except CredentialUnreadable:
                report.unreadable.append(row.id)
                continue
            sealed = self.vault.seal(payload, _aad(row))
            row.key_id, row.ciphertext = sealed.key_id, sealed.blob
            report.resealed += 1
        await session.flush()
        return report


@dataclass
class CredentialSnapshot:
    service: CredentialService
    rows: dict[str, ProviderCredential]
    server_keys_allowed: bool

    @property
    def usable(self) -> set[str]:
        server = {n for n, s in self.service.server_keys.items() if s.api_key is not None}
        return set(self.rows) | (server if self.server_keys_allowed else set())

    def resolve(self, provider: str) -> dict[str, Any] | None:
        """As ``CredentialService.resolve``, without another query."""
        row = self.rows.get(provider)
        if row is not None:
            return self.service.vault.open(Sealed(row.key_id, row.ciphertext), _aad(row))
        server = self.service.server_keys.get(provider)
        if server is None or server.api_key is None or not self.server_keys_allowed:
            return None
        payload: dict[str, Any] = {"api_key": server.api_key.get_secret_value()}
        if server.endpoint:
            payload["endpoint"] = server.endpoint
        return payload
