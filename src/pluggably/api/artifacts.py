"""Signed artifact downloads. The link itself is the credential (API.md §7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from pluggably.api.deps import Artifacts, DbSession
from pluggably.api.schemas import error_responses

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])


_ERRORS = error_responses(403, 404, 410)
_ERRORS[403]["description"] = "Signature missing or invalid (`forbidden`)"
_ERRORS[404]["description"] = "Unknown artifact (`artifact_not_found`)"
_ERRORS[410]["description"] = "The link has expired (`artifact_expired`)"


@router.get(
    "/{artifact_id}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "The artifact's bytes, with its stored content type",
        },
        **_ERRORS,
    },
)
async def download_artifact(
    session: DbSession,
    artifacts: Artifacts,
    artifact_id: Annotated[str, Path(max_length=64)],
    expires: Annotated[int | None, Query(description="Unix seconds the link expires at")] = None,
    sig: Annotated[str | None, Query(max_length=128, description="HMAC-SHA256, hex")] = None,
) -> StreamingResponse:
    """Stream an artifact through its signed link; no other credential is needed."""
    found = await artifacts.open(session, artifact_id, expires, sig)
    headers = {
        "Content-Length": str(found.size_bytes),
        "Cache-Control": f"private, max-age={found.max_age_s}",
        "Content-Disposition": f"inline; filename={found.filename}",
        # Generated content is served from the gateway's own origin: never let a
        # browser sniff it into HTML or run scripts from it.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return StreamingResponse(found.chunks, media_type=found.content_type, headers=headers)
