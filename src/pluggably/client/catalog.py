"""Models, downloads and storage (API.md §4)."""

from __future__ import annotations

from typing import Any, Literal

from pluggably.client.binding import Bound, S, operation, stream_operation
from pluggably.client.calls import Call, Route, StreamCall, dump, model, nothing, query_params
from pluggably.downloads.schemas import DownloadJobInfo, DownloadRequest, JobList, JobStatus
from pluggably.lifecycle.schemas import LoadedList, Residency
from pluggably.registry.schemas import (
    Modality,
    ModelInfo,
    ModelList,
    ModelStatus,
    ModelStatusName,
    ParameterSchema,
    SearchPage,
)
from pluggably.storage.schemas import CleanupReport, StorageReport


def _download_request(
    source: str,
    *,
    filename: str | None,
    revision: str | None,
    model: dict[str, Any],
    options: dict[str, Any],
) -> DownloadRequest:
    if source.startswith(("http://", "https://")):
        where: dict[str, Any] = {"type": "url", "uri": source}
    else:
        where = {"type": "huggingface", "id": source}
    if filename is not None:
        where["filename"] = filename
    if revision is not None:
        where["revision"] = revision
    body: dict[str, Any] = {"source": where}
    if model:
        body["model"] = model
    if options:
        body["options"] = options
    return DownloadRequest.model_validate(body)


class Models(Bound[S]):
    """The model registry and local model residency: ``client.models``.

    Model ids may contain ``/`` and ``:`` (``openai:gpt-4o-mini``); pass them as they are."""

    @operation("GET", "/v1/models")
    def list(
        route: Route,
        *,
        modality: Modality | None = None,
        provider: str | None = None,
        status: ModelStatusName | None = None,
        q: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        discover: bool | None = None,
    ) -> Call[ModelList]:
        """One page of models (registry first, then the provider models this user can
        call); pass ``next_cursor`` as ``cursor`` for the next."""
        params = query_params(
            modality=modality,
            provider=provider,
            status=status,
            q=q,
            limit=limit,
            cursor=cursor,
            discover=discover,
        )
        return Call(route, route.url(), model(ModelList), params=params)

    @operation("GET", "/v1/models/{model_id:path}")
    def get(route: Route, model_id: str) -> Call[ModelInfo]:
        """One model, with its documentation once enriched."""
        return Call(route, route.url(model_id=model_id), model(ModelInfo))

    @operation("DELETE", "/v1/models/{model_id:path}")
    def delete(route: Route, model_id: str) -> Call[None]:
        """Admin: unregister a model and delete the files it owns."""
        return Call(route, route.url(model_id=model_id), nothing)

    @operation("POST", "/v1/models/{model_id:path}/default")
    def set_default(route: Route, model_id: str) -> Call[ModelInfo]:
        """Admin: make the model the default of its modality."""
        return Call(route, route.url(model_id=model_id), model(ModelInfo))

    @operation("GET", "/v1/models/{model_id:path}/status")
    def status(route: Route, model_id: str) -> Call[ModelStatus]:
        return Call(route, route.url(model_id=model_id), model(ModelStatus))

    @operation("POST", "/v1/models/{model_id:path}/load")
    def load(route: Route, model_id: str, *, wait: bool = False) -> Call[Residency]:
        """Admin: load a local model; ``status`` is ``loading`` (202) or, with ``wait``
        or when it already was, ``loaded``."""
        return Call(route, route.url(model_id=model_id), model(Residency), body={"wait": wait})

    @operation("POST", "/v1/models/{model_id:path}/unload")
    def unload(route: Route, model_id: str, *, force: bool = False) -> Call[Residency]:
        """Admin: unload a local model (``force``: once its in-flight requests finish)."""
        params = query_params(force=force or None)
        return Call(route, route.url(model_id=model_id), model(Residency), params=params)

    @operation("GET", "/v1/models/loaded")
    def loaded(route: Route) -> Call[LoadedList]:
        """The local models in memory."""
        return Call(route, route.url(), model(LoadedList))

    @operation("GET", "/v1/models/search")
    def search(
        route: Route,
        query: str | None = None,
        *,
        source: Literal["huggingface"] | None = None,
        modality: Modality | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[SearchPage]:
        """Search the Hugging Face hub; GGUF repos list their quantizations."""
        params = query_params(
            query=query, source=source, modality=modality, limit=limit, cursor=cursor
        )
        return Call(route, route.url(), model(SearchPage), params=params)

    @operation("POST", "/v1/models/download")
    def download(
        route: Route,
        source: str | DownloadRequest,
        *,
        filename: str | None = None,
        revision: str | None = None,
        model_id: str | None = None,
        name: str | None = None,
        modality: Modality | None = None,
        version: str | None = None,
        sha256: str | None = None,
        allow_large: bool | None = None,
    ) -> Call[DownloadJobInfo]:
        """Admin: start a download job. ``source`` is a Hugging Face repo id
        (``owner/name``) or an ``https://`` URL (or a whole ``DownloadRequest``). The
        same model already downloading or downloaded answers its existing job."""
        if isinstance(source, DownloadRequest):
            body = source
        else:
            target = {"id": model_id, "name": name, "modality": modality, "version": version}
            options = {"sha256": sha256, "allow_large": allow_large}
            body = _download_request(
                source,
                filename=filename,
                revision=revision,
                model={k: v for k, v in target.items() if v is not None},
                options={k: v for k, v in options.items() if v is not None},
            )
        return Call(route, route.url(), model(DownloadJobInfo), body=dump(body))

    @operation("GET", "/v1/schema")
    def schema(route: Route, model_id: str) -> Call[ParameterSchema]:
        """The model's parameter JSON Schema (``.schema_``), versioned."""
        params = {"model": model_id}
        return Call(route, route.url(), model(ParameterSchema), params=params)


class Jobs(Bound[S]):
    """Download jobs (admin only): ``client.jobs``."""

    @operation("GET", "/v1/jobs/{job_id}")
    def get(route: Route, job_id: str) -> Call[DownloadJobInfo]:
        return Call(route, route.url(job_id=job_id), model(DownloadJobInfo))

    @operation("DELETE", "/v1/jobs/{job_id}")
    def cancel(route: Route, job_id: str) -> Call[DownloadJobInfo]:
        """Stop the transfer; the job ends ``cancelled``."""
        return Call(route, route.url(job_id=job_id), model(DownloadJobInfo))

    @stream_operation("GET", "/v1/jobs/{job_id}/events")
    def progress(route: Route, job_id: str) -> StreamCall[DownloadJobInfo]:
        """The job now, then at every progress or status change, until it ends."""
        return StreamCall(route, route.url(job_id=job_id), DownloadJobInfo.model_validate)

    @operation("GET", "/v1/jobs")
    def list(
        route: Route, *, status: JobStatus | None = None, limit: int | None = None
    ) -> Call[JobList]:
        params = query_params(status=status, limit=limit)
        return Call(route, route.url(), model(JobList), params=params)


class Storage(Bound[S]):
    """Model storage (admin only): ``client.storage``."""

    @operation("GET", "/v1/storage")
    def usage(route: Route) -> Call[StorageReport]:
        """Usage against the quota, and the local models with their sizes."""
        return Call(route, route.url(), model(StorageReport))

    @operation("POST", "/v1/storage/cleanup")
    def cleanup(route: Route, *, dry_run: bool = False) -> Call[CleanupReport]:
        """Apply the retention policy now (``dry_run``: report without deleting)."""
        return Call(route, route.url(), model(CleanupReport), body={"dry_run": dry_run})
