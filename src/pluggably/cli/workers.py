"""``pluggably serve --workers N``: N server processes on one listening socket, for
provider throughput beyond one event loop.

The parent binds the socket, then forks the workers; the kernel hands each new
connection to one of them. Every worker is a full replica of the cluster on the same
PostgreSQL (its own id, heartbeat and relay: cluster/), so a request started on one
is followed and cancelled through any, and limits count across all. Local models are
off in every worker (``local_models: false``): a model loaded per worker would hold
its memory N times. Serve local models from one plain ``pluggably serve`` (or a
llama.cpp/vLLM server) and reach them as an endpoint.

The parent restarts a worker that dies, and on SIGINT/SIGTERM stops them all (each
finishes its shutdown work) and exits."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess

from pluggably.config import Settings
from pluggably.observability.logging import configure_logging, get_logger

log = get_logger("pluggably.workers")
RESTART_PAUSE_S = 1.0  # between restarts of a worker that keeps dying
STOP_TIMEOUT_S = 30.0


def check_workers(settings: Settings, count: int) -> str | None:
    """Why ``count`` workers cannot run with ``settings`` (None: they can)."""
    if count > 1 and not settings.resolved_database_url.startswith("postgresql"):
        return (
            "--workers needs PostgreSQL (PLUGGABLY_DATABASE_URL=postgresql+asyncpg://…): the "
            "workers share requests, cancels and limits through it; SQLite serves one process"
        )
    return None


def run_workers(settings: Settings, count: int) -> None:
    import uvicorn

    from pluggably.serving import uvicorn_options

    configure_logging(settings.log_level, settings.log_format)
    settings = settings.model_copy(update={"local_models": False})
    # Only its socket is used: the workers build their own apps.
    sock = uvicorn.Config(
        "pluggably.app:create_app", host=settings.host, port=settings.port
    ).bind_socket()
    context = multiprocessing.get_context("fork")
    stopping = False

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_worker, args=(index, settings, sock, uvicorn_options), name=f"worker-{index}"
        )
        process.start()
        log.info("worker_started", worker=index, pid=process.pid)
        return process

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    workers = [start(index) for index in range(count)]
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    log.info("workers_serving", workers=count, host=settings.host, port=settings.port)
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                log.warning("worker_died", worker=index, exitcode=process.exitcode)
                time.sleep(RESTART_PAUSE_S)
                workers[index] = start(index)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
    sock.close()
    log.info("workers_stopped")


def _worker(index: int, settings: Settings, sock: socket.socket, options_of: object) -> None:
    import structlog
    import uvicorn

    from pluggably.app import create_app

    # Every line this worker logs says which worker it is (the server's tasks inherit it).
    structlog.contextvars.bind_contextvars(worker=index)
    # The parent's handlers stay with it: uvicorn installs its own for a graceful stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    application = create_app(settings)
    options = options_of(settings)  # type: ignore[operator]
    server = uvicorn.Server(uvicorn.Config(application, **options))
    server.run(sockets=[sock])
