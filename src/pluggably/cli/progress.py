"""Following a download job: a progress bar on stderr driven by the job's events,
reconnecting when the stream is cut, and the job's end as the command's result."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from pluggably.cli.common import CliError, emit_json
from pluggably.client import Client, ProtocolError, TransportError
from pluggably.downloads.schemas import DownloadJobInfo

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# A stream can end without a terminal frame (a proxy's idle cut, a server restart that
# resumes the job): reconnect this many times before giving up.
MAX_RECONNECTS = 5


class _ServerSpeed(ProgressColumn):
    """The server's measure of the transfer: our frames arrive at its pace, not the bytes'."""

    def render(self, task: Task) -> Text:
        speed = task.fields.get("speed")
        return Text(f"{decimal(int(speed))}/s" if speed else "", style="progress.data.speed")


class _ServerEta(ProgressColumn):
    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        return Text(
            f"eta {timedelta(seconds=int(eta))}" if eta is not None else "",
            style="progress.remaining",
        )


def _progress(quiet: bool) -> Progress:
    # On stderr, so that stdout carries only the result (or --json) for scripts.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        _ServerSpeed(),
        _ServerEta(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        disable=quiet,
    )


def follow(client: Client, job: DownloadJobInfo, quiet: bool) -> DownloadJobInfo:
    """Drive a progress bar from the job's events until it ends; the last state."""
    with _progress(quiet) as progress:
        bar = progress.add_task(job.model_id, total=job.bytes_total, status="")
        for _ in range(MAX_RECONNECTS + 1):
            try:
                for frame in client.jobs.progress(job.job_id):
                    job = frame
                    running = job.status == "running"
                    progress.update(
                        bar,
                        total=job.bytes_total,
                        completed=job.bytes_done,
                        speed=job.speed_bps if running else None,
                        eta=job.eta_s if running else None,
                        status=job.status,
                    )
            except (ProtocolError, TransportError):
                pass  # a cut stream: ask where the job is, then follow it again
            if job.status in TERMINAL:
                return job
            job = client.jobs.get(job.job_id)
            if job.status in TERMINAL:
                return job
    raise CliError(f"lost the progress stream of job {job.job_id}; it is still {job.status}")


def report(job: DownloadJobInfo, as_json: bool) -> None:
    if as_json:
        emit_json(job)
    if job.status == "completed":
        if not as_json:
            typer.echo(f"model {job.model_id} is ready")
        return
    what = "failed" if job.status == "failed" else "was cancelled"
    detail = f": {job.error} ({job.error_code})" if job.error else ""
    raise CliError(f"download of {job.model_id} {what}{detail}")
