"""Generated outputs too large to inline (images, meshes, previews): stored on local
disk or in an S3-compatible bucket, described in the ``artifacts`` table and served
through HMAC-signed, expiring URLs."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pluggably.artifacts.schemas import ArtifactInfo
    from pluggably.artifacts.service import ArtifactDownload, ArtifactService
    from pluggably.artifacts.stores import ArtifactStore, LocalArtifactStore, S3ArtifactStore

# Imported on first use: ``artifacts.schemas`` is read by the HTTP client, which must
# not pay for the service's database and storage imports.
_LAZY = {
    "ArtifactDownload": "pluggably.artifacts.service",
    "ArtifactInfo": "pluggably.artifacts.schemas",
    "ArtifactService": "pluggably.artifacts.service",
    "ArtifactStore": "pluggably.artifacts.stores",
    "LocalArtifactStore": "pluggably.artifacts.stores",
    "S3ArtifactStore": "pluggably.artifacts.stores",
}

__all__ = [
    "ArtifactDownload",
    "ArtifactInfo",
    "ArtifactService",
    "ArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
