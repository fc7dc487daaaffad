"""How an artifact is described to callers (``output.artifacts[]``, session messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

ArtifactType = Literal["image", "mesh", "preview"]


class ArtifactInfo(BaseModel):
    """One entry of ``output.artifacts[]`` (API.md §3)."""

    id: str
    type: ArtifactType
    url: str
    content_type: str
    size_bytes: int
    expires_at: datetime
