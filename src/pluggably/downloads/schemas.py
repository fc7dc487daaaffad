"""Bodies of the download and job routes (API.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pluggably.registry.schemas import Modality

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TargetModel(_Strict):
    id: str | None = Field(default=None, max_length=300, pattern=r"^[A-Za-z0-9][\w.\-/:]*$")
    name: str | None = Field(default=None, max_length=300)
    modality: Modality | None = None
    version: str | None = Field(default=None, max_length=100)

    @field_validator("id")
    @classmethod
    def _no_dot_segments(cls, value: str | None) -> str | None:
        if value is not None and ".." in value.split("/"):
            raise ValueError("model ids have no '..' segments")
        return value


class DownloadSource(_Strict):
    type: Literal["huggingface", "url"]
    id: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$",
        description="Hugging Face repo id (owner/name).",
    )
    uri: str | None = Field(default=None, max_length=2048, description="http(s) URL.")
    revision: str | None = Field(default=None, max_length=100, pattern=r"^[\w.\-/]+$")
    filename: str | None = Field(
        default=None, max_length=500, description="One file of the repo (e.g. a GGUF quantization)."
    )

    @field_validator("id", "revision")
    @classmethod
    def _no_dot_segments(cls, value: str | None) -> str | None:
        # Both go into hub URLs: '..' would climb to another hub route (or another repo).
        if value is not None and (
            value.startswith("/") or {".", ".."} & set(value.split("/")) or "//" in value
        ):
            raise ValueError("no '.'/'..' segments, leading or empty segments")
        return value

    @model_validator(mode="after")
    def _has_location(self) -> DownloadSource:
        if self.type == "huggingface" and not self.id:
            raise ValueError("a huggingface source needs 'id' (owner/name)")
        if self.type == "url" and not self.uri:
            raise ValueError("a url source needs 'uri'")
        return self


class DownloadOptions(_Strict):
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    allow_large: bool = Field(default=False, description="Allow downloads over the size guard.")


class DownloadRequest(_Strict):
    model: TargetModel = Field(default_factory=TargetModel)
    source: DownloadSource
    options: DownloadOptions = Field(default_factory=DownloadOptions)


class JobError(BaseModel):
    code: str
    message: str


class DownloadJobInfo(BaseModel):
    job_id: str
    model_id: str
    status: JobStatus
    progress_pct: float | None
    bytes_done: int
    bytes_total: int | None
    speed_bps: float | None
    eta_s: float | None
    error: JobError | None
    created_at: datetime
    updated_at: datetime


class JobList(BaseModel):
    jobs: list[DownloadJobInfo]


def job_info(job: Any, speed_bps: float | None = None) -> DownloadJobInfo:
    total = job.bytes_total
    pct = round(100.0 * job.bytes_done / total, 2) if total else None
    if job.status == "completed":
        pct = 100.0
    eta = (total - job.bytes_done) / speed_bps if total and speed_bps else None
    return DownloadJobInfo(
        job_id=job.id,
        model_id=job.model_id,
        status=job.status,
        progress_pct=pct,
        bytes_done=job.bytes_done,
        bytes_total=total,
        speed_bps=round(speed_bps, 1) if speed_bps else None,
        eta_s=round(eta, 1) if eta is not None else None,
        error=JobError.model_validate(job.error) if job.error else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
