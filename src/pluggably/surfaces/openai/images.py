"""The images of a native answer as POST /openai/v1/images/generations hands them out:
signed links (inline images are stored as artifacts first) or base64 (artifacts are read
back by id)."""

from __future__ import annotations

import base64

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.artifacts.service import ArtifactService
from pluggably.auth.principal import Principal
from pluggably.generation.schemas import GenerateResponse


def _image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/gif" if data.startswith(b"GIF8") else "image/png"


async def image_urls(
    session: AsyncSession,
    artifacts: ArtifactService,
    principal: Principal,
    response: GenerateResponse,
) -> list[str]:
    """Signed links: the artifacts the response already has, else the inline images
    stored now (owned by the caller, tied to the request)."""
    stored = [a.url for a in response.output.artifacts if a.type == "image"]
    if stored or not response.output.images:
        return stored
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
    session: AsyncSession, artifacts: ArtifactService, response: GenerateResponse
) -> list[str]:
    """The images inline; ones that were too large to inline are read back from their
    artifacts, by id."""
    if response.output.images:
        return list(response.output.images)
    stored = [a for a in response.output.artifacts if a.type == "image"]
    return [base64.b64encode(await artifacts.read(session, a.id)).decode() for a in stored]
