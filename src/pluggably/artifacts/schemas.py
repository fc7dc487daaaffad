"""How an artifact is described to callers (``output.artifacts[]``, session messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

ArtifactType = Literal["image", "mesh", "preview"]
# The file extension of each content type artifacts are stored as (the server's file
# names, the CLI's saved files).
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "model/gltf-binary": "glb",
    "model/gltf+json": "gltf",
    "model/obj": "obj",
    "model/ply": "ply",
    "model/stl": "stl",
    "application/json": "json",
    "text/plain": "txt",
}


def extension_of(content_type: str) -> str | None:
    return EXTENSIONS.get(content_type.split(";", 1)[0].strip().lower())


class ArtifactInfo(BaseModel):
    """One entry of ``output.artifacts[]`` (API.md §3)."""

    id: str
    type: ArtifactType
    url: str
    content_type: str
    size_bytes: int
    expires_at: datetime
