"""Saving artifacts, handing out signed links, serving them, and expiring them.

Bytes are written to the store before the row is added, so a row never points at
nothing; expiry deletes the object before the row, so a failed run is retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.artifacts.models import Artifact
from pluggably.artifacts.repository import ArtifactRepository
from pluggably.artifacts.schemas import ArtifactInfo, ArtifactType, extension_of
from pluggably.artifacts.signing import UrlSigner
from pluggably.artifacts.stores import ArtifactStore, ObjectMissing
from pluggably.db import Database, utcnow
from pluggably.errors import ArtifactExpired, ArtifactNotFound, Forbidden, GatewayError
from pluggably.ids import new_id
from pluggably.keyring import Keyring
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.artifacts")

# type/subtype with optional parameters; nothing that could split a header.
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;[ -~]*)?")
CLEANUP_BATCH = 500


@dataclass(frozen=True)
class ArtifactDownload:
    artifact_id: str
    content_type: str
    size_bytes: int
    filename: str
    max_age_s: int
    chunks: AsyncIterator[bytes]


def extension(content_type: str) -> str:
    return extension_of(content_type) or "bin"


class ArtifactService:
    def __init__(
        self,
        store: ArtifactStore,
        keyring: Keyring,
        public_base_url: str | None,
        default_ttl: timedelta,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.signer = UrlSigner(keyring)
        # Without a public base URL links are root-relative; clients resolve them
        # against the gateway address they already use.
        self.base_url = (public_base_url or "").rstrip("/")
        self.default_ttl = default_ttl
        self.clock = clock

    @property
    def backend(self) -> str:
        return self.store.name

    def url_for(self, artifact_id: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        sig = self.signer.sign(artifact_id, expires)
        return f"{self.base_url}/v1/artifacts/{artifact_id}?expires={expires}&sig={sig}"

    def info(self, artifact: Artifact) -> ArtifactInfo:
        return ArtifactInfo(
            id=artifact.id,
            type=cast(ArtifactType, artifact.type),  # checked on save
            url=self.url_for(artifact.id, artifact.expires_at),
            content_type=artifact.content_type,
            size_bytes=artifact.size_bytes,
            expires_at=artifact.expires_at,
        )

    async def save(
        self,
        session: AsyncSession,
        *,
        owner_id: str,
        data: bytes,
        type: ArtifactType,
        content_type: str,
        request_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> ArtifactInfo:
        """Store ``data`` and record it (flushed; the caller's unit of work commits).
        The link expires with the artifact."""
        ttl = self.default_ttl if ttl is None else ttl
        if type not in get_args(ArtifactType):
            raise ValueError(f"unknown artifact type {type!r}")
        if not _CONTENT_TYPE.fullmatch(content_type) or len(content_type) > 100:
            raise ValueError(f"invalid content type {content_type!r}")
        if ttl <= timedelta(0):
            raise ValueError("an artifact's ttl must be positive")
        now = self.clock()
        artifact_id = new_id("art")
        # Whole seconds: the link carries expires_at as unix seconds.
        expires_at = (now + ttl).replace(microsecond=0)
        key = f"{now:%Y/%m/%d}/{artifact_id}.{extension(content_type)}"
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        await self.store.put(key, data, content_type)
        artifact = Artifact(
            id=artifact_id,
            user_id=owner_id,
            request_id=request_id,
            type=type,
            content_type=content_type,
            size_bytes=len(data),
            sha256=digest,
            backend=self.store.name,
            storage_key=key,
            created_at=now,
            expires_at=expires_at,
        )
        try:
            await ArtifactRepository(session).add(artifact)
        except BaseException:
            await self._discard(key)
            raise
        return self.info(artifact)

    async def _discard(self, key: str) -> None:
        try:
            await self.store.delete(key)
        except Exception:
            # The original failure matters more; the object is only an orphan.
            log.warning("artifact_discard_failed", key=key)

    async def open(
        self, session: AsyncSession, artifact_id: str, expires: int | None, sig: str | None
    ) -> ArtifactDownload:
        """Check the link, then the row, then the stored object. The signature comes
        first: forged links cost no database query and learn nothing about ids."""
        if expires is None or not sig or not self.signer.verify(artifact_id, expires, sig):
            raise Forbidden("This artifact link is invalid.")
        return await self._open(session, artifact_id, expires)

    async def read(self, session: AsyncSession, artifact_id: str) -> bytes:
        """The stored bytes of an artifact this server just named in a response (no link
        to check): expired or gone fails as its download would."""
        download = await self._open(session, artifact_id, None)
        return b"".join([chunk async for chunk in download.chunks])

    async def _open(
        self, session: AsyncSession, artifact_id: str, expires: int | None
    ) -> ArtifactDownload:
        """``expires``: the link's (None: only the artifact's own lifetime counts)."""
        now = self.clock()
        artifact = await ArtifactRepository(session).get(artifact_id)
        remaining = expires - now.timestamp() if expires is not None else math.inf
        if artifact is not None:
            remaining = min(remaining, (artifact.expires_at - now).total_seconds())
        if remaining <= 0:
            raise ArtifactExpired()
        if artifact is None or artifact.backend != self.store.name:
            raise ArtifactNotFound()
        try:
            stored = await self.store.open(artifact.storage_key)
        except ObjectMissing:
            log.warning("artifact_object_missing", artifact_id=artifact.id)
            raise ArtifactNotFound("This artifact's data is no longer stored.") from None
        except ValueError:
            # The store refused the key: it leads outside its root (a planted symlink).
            log.warning("artifact_key_refused", artifact_id=artifact.id)
            raise ArtifactNotFound("This artifact's data is no longer stored.") from None
        return ArtifactDownload(
            artifact_id=artifact.id,
            content_type=artifact.content_type,
            size_bytes=stored.size,
            filename=f"{artifact.id}.{extension(artifact.content_type)}",
            max_age_s=math.floor(remaining),
            chunks=stored.chunks,
        )

    async def cleanup_expired(self, session: AsyncSession, *, limit: int = CLEANUP_BATCH) -> int:
        """Delete up to ``limit`` expired artifacts of this store: object, then row.
        Rows of another backend wait until that backend is configured again."""
        repo = ArtifactRepository(session)
        removed = 0
        for artifact in await repo.expired(self.store.name, self.clock(), limit):
            try:
                await self.store.delete(artifact.storage_key)
            except (GatewayError, OSError, ValueError):
                # Store unreachable or key refused: keep the row, go on with the others.
                log.warning("artifact_delete_failed", artifact_id=artifact.id)
                continue
            if await repo.delete(artifact.id):
                removed += 1
        return removed

    async def expire(self, db: Database) -> int:
        """One pass of the periodic cleanup (background work: its own transaction)."""
        async with db.session() as session:
            removed = await self.cleanup_expired(session)
        if removed:
            log.info("artifacts_expired", count=removed)
        return removed
