"""Bodies of the download and job routes (API.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pluggably.registry.schemas import Modality
from pluggably.request_body import RequestBody

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class _Strict(RequestBody):
    """``null`` for an optional field means "not set" (existing clients send it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _no_dot_segments(value: str | None) -> str | None:
    # Ids and revisions go into hub URLs: '..' would climb to another hub route (or repo).
    if value is not None and (
        value.startswith("/") or {".", ".."} & set(value.split("/")) or "//" in value
    ):
        raise ValueError("no '.'/'..' segments, leading or empty segments")
    return value


Revision = Annotated[
    str | None,
    Field(max_length=100, pattern=r"^[\w.\-/]+$"),
    AfterValidator(_no_dot_segments),
]


class TargetModel(_Strict):
    id: str | None = Field(default=None, max_length=300, pattern=r"^[A-Za-z0-9][\w.\-/:]*$")
    name: str | None = Field(default=None, max_length=300)
    modality: Modality | None = None
    version: str | None = Field(default=None, max_length=100)
    provider: Literal["local"] | None = Field(
        default=None, description="Downloaded models are served by the local provider."
    )

    @field_validator("id")
    @classmethod
    def _no_dot_segments(cls, value: str | None) -> str | None:
        if value is not None and ".." in value.split("/"):
            raise ValueError("model ids have no '..' segments")
        return value


class DownloadSource(_Strict):
    type: Literal["huggingface", "url", "local"]
    id: Annotated[
        str | None,
        Field(
            max_length=200,
            pattern=r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$",
            description="Hugging Face repo id (owner/name).",
        ),
        AfterValidator(_no_dot_segments),
    ] = None
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description="url: the http(s) URL. local: the file or folder, relative to the "
        "models directory or an absolute path inside it.",
    )
    revision: Revision = None
    filename: str | None = Field(
        default=None, max_length=500, description="One file of the repo (e.g. a GGUF quantization)."
    )

    @model_validator(mode="after")
    def _has_location(self) -> DownloadSource:
        if self.type == "huggingface" and not self.id:
            raise ValueError("a huggingface source needs 'id' (owner/name)")
        if self.type == "url" and not self.uri:
            raise ValueError("a url source needs 'uri'")
        if self.type == "local" and not self.uri:
            raise ValueError("a local source needs 'uri': a path under the models directory")
        return self


class DownloadOptions(_Strict):
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    allow_large: bool = Field(default=False, description="Allow downloads over the size guard.")
    revision: Revision = Field(
        default=None, description="The same as source.revision (where existing clients put it)."
    )
    install_local: Literal[True] = Field(
        default=True,
        description="Downloads are always installed under the models directory (the "
        "PlugAI Dart app sends true).",
    )


class DownloadRequest(_Strict):
    """``null`` for an optional field (``options``, ``options.allow_large``, …) means the
    field is not set. ``source.type: local`` registers a file or folder already under
    the models directory: its job is completed at once."""

    model: TargetModel = Field(default_factory=TargetModel)
    source: DownloadSource
    options: DownloadOptions = Field(default_factory=DownloadOptions)

    @field_validator("options")
    @classmethod
    def _one_revision(cls, options: DownloadOptions, info: ValidationInfo) -> DownloadOptions:
        source = info.data.get("source")
        given = source.revision if isinstance(source, DownloadSource) else None
        if options.revision is not None and given is not None and options.revision != given:
            raise ValueError(
                f"options.revision '{options.revision}' differs from source.revision "
                f"'{given}'; give the revision once"
            )
        return options

    @model_validator(mode="after")
    def _revision_in_source(self) -> DownloadRequest:
        """Everything after validation reads source.revision only."""
        if self.options.revision is not None and self.source.revision is None:
            self.source.revision = self.options.revision
        return self


class DownloadJobInfo(BaseModel):
    job_id: str
    model_id: str
    status: JobStatus
    progress_pct: float = Field(
        description="0-100; 0 while the size is not known yet (the PlugAI clients require a "
        "number)."
    )
    bytes_done: int
    bytes_total: int | None
    speed_bps: float | None
    eta_s: float | None
    error: str | None = Field(
        description="Why the job failed, in words (a string: what the PlugAI clients parse)."
    )
    error_code: str | None = Field(description="The error code of a failed job (API.md §2).")
    created_at: datetime
    updated_at: datetime


class JobList(BaseModel):
    jobs: list[DownloadJobInfo]


def job_info(job: Any, speed_bps: float | None = None) -> DownloadJobInfo:
    total = job.bytes_total
    pct = round(100.0 * job.bytes_done / total, 2) if total else 0.0
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
        error=job.error["message"] if job.error else None,
        error_code=job.error["code"] if job.error else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
