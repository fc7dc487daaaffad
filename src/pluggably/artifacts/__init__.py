"""Generated outputs too large to inline (images, meshes, previews): stored on local
disk or in an S3-compatible bucket, described in the ``artifacts`` table and served
through HMAC-signed, expiring URLs."""

from pluggably.artifacts.service import ArtifactDownload, ArtifactInfo, ArtifactService
from pluggably.artifacts.stores import ArtifactStore, LocalArtifactStore, S3ArtifactStore

__all__ = [
    "ArtifactDownload",
    "ArtifactInfo",
    "ArtifactService",
    "ArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
]
