"""The images of a native answer as POST /openai/v1/images/generations hands them out:
signed links (inline images are stored as artifacts first) or base64 (artifacts are read
back by id)."""

from __future__ import annotations

import base64

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.artifacts.service import ArtifactService
from pluggably.auth.principal import Principal
from pluggably.db import Database
from pluggably.generation.schemas import Artifact, GenerateResponse


def _image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/gif" if data.startswith(b"GIF8") else "image/png"


async def image_urls(
    db: Database, artifacts: ArtifactService, principal: Principal, response: GenerateResponse
) -> list[str]:
    """Signed links: the artifacts the response already has, else the inline images
    stored now (owned by the caller, tied to the request)."""
    stored = [a.url for a in response.output.artifacts if a.type == "image"]
    if stored or not response.output.images:
        return stored
    async with db.session() as session:
        for b64 in response.output.images:
            data = base64.b64decode(b64)
            info = await artifacts.save(
                session,
                owner_id=principal.user_id,
                data=data,
                type="image",
                content_type=_image_type(data),
                request_id=response.request_id,
            )
            stored.append(info.url)
    return stored


async def images_b64(
    db: Database, artifacts: ArtifactService, response: GenerateResponse
) -> list[str]:
    """The images inline; ones that were too large to inline are read back from their
    artifacts, by id."""
    if response.output.images:
        return list(response.output.images)
    out = []
    async with db.session() as session:
        for artifact in (a for a in response.output.artifacts if a.type == "image"):
            data = await _read(artifacts, session, artifact)
            out.append(base64.b64encode(data).decode())
    return out


async def _read(artifacts: ArtifactService, session: AsyncSession, artifact: Artifact) -> bytes:
    """The stored bytes of an artifact the response names. The service reads only
    through a signed link; the surface signs one for the artifact's own lifetime, so an
    expired or missing artifact fails as its download would."""
    expires = int(artifact.expires_at.timestamp())
    sig = artifacts.signer.sign(artifact.id, expires)
    download = await artifacts.open(session, artifact.id, expires, sig)
    return b"".join([chunk async for chunk in download.chunks])
