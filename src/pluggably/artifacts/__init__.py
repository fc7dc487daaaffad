"""Generated outputs too large to inline (images, meshes, previews): stored on local
disk or in an S3-compatible bucket, described in the ``artifacts`` table and served
through HMAC-signed, expiring URLs."""

from pluggably.artifacts.service import (
    ArtifactDownload,
    ArtifactExpired,
    ArtifactInfo,
    ArtifactNotFound,
    ArtifactService,
)
from pluggably.artifacts.stores import ArtifactStore, LocalArtifactStore, S3ArtifactStore

__all__ = [
    "ArtifactDownload",
    "ArtifactExpired",
    "ArtifactInfo",
    "ArtifactNotFound",
    "ArtifactService",
    "ArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
]
