"""Download jobs (admin only): list, get, cancel, and an SSE stream of progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from pluggably.api.deps import AdminUser, DbSession, Downloads
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.api.sse import sse_response
from pluggably.downloads.schemas import DownloadJobInfo, JobList, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=AUTH_ERRORS)


@router.get("", response_model=JobList)
async def list_jobs(
    _admin: AdminUser,
    session: DbSession,
    downloads: Downloads,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JobList:
    return JobList(jobs=await downloads.page(session, limit=limit, status=status))


@router.get("/{job_id}", response_model=DownloadJobInfo, responses=error_responses(404))
async def get_job(
    job_id: str, _admin: AdminUser, session: DbSession, downloads: Downloads
) -> DownloadJobInfo:
    return await downloads.get(session, job_id)


@router.delete("/{job_id}", response_model=DownloadJobInfo, responses=error_responses(404))
async def cancel_job(job_id: str, _admin: AdminUser, downloads: Downloads) -> DownloadJobInfo:
    """Cancel: the transfer stops (its connection is closed) and the job ends cancelled.
    A job running on another replica is asked to stop: the answer waits up to 3 s for
    it (``running`` if that replica has not stopped it by then)."""
    return await downloads.cancel(job_id)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "DownloadJob frames"},
        **error_responses(404),
    },
)
async def job_events(
    job_id: str, _admin: AdminUser, session: DbSession, downloads: Downloads
) -> StreamingResponse:
    """SSE: the job now, then on every progress or status change, then ``[DONE]``."""
    await downloads.get(session, job_id)  # 404 before the stream starts
    return sse_response(downloads.events(job_id))
