"""``pluggably serve --workers N``: N server processes on one listening socket, for
provider throughput beyond one event loop.

The parent binds the socket, then forks the workers; the kernel hands each new
connection to one of them. Every worker is a full replica of the cluster on the same
PostgreSQL (its own id, heartbeat and relay: cluster/), so a request started on one
is followed and cancelled through any, and limits count across all. Local models are
off in every worker (``local_models: false``): a model loaded per worker would hold
its memory N times. Serve local models from one plain ``pluggably serve`` (or a
llama.cpp/vLLM server) and reach them as an endpoint.

The parent restarts a worker that dies, after a pause that doubles while it keeps
dying within a minute of its start, and gives up (stops every worker, exits 1) when
one dies that soon four times in a row: a worker that cannot start (a setting, the
database refusing it) does not become a restart storm, and the supervisor sees the
failure. On SIGINT/SIGTERM, even one arriving while workers start, it stops them all
(each finishes its shutdown work) and exits."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess

from pluggably.config import Settings
from pluggably.observability.logging import configure_logging, get_logger

log = get_logger("pluggably.workers")
RESTART_PAUSE_S = 1.0  # before a dead worker's restart; doubled per quick death
QUICK_DEATH_S = 60.0  # a worker dead sooner after its start never really ran
MAX_QUICK_DEATHS = 4  # in a row for one worker: it will not start, stop trying
STOP_TIMEOUT_S = 30.0
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


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

    configure_logging(settings.log_level, settings.log_format)
    settings = settings.model_copy(update={"local_models": False})
    # Only its socket is used: the workers build their own apps.
    sock = uvicorn.Config(
        "pluggably.app:create_app", host=settings.host, port=settings.port
    ).bind_socket()
    context = multiprocessing.get_context("fork")
    workers: dict[int, BaseProcess] = {}
    started_at: dict[int, float] = {}
    quick_deaths = dict.fromkeys(range(count), 0)
    restart_at: dict[int, float] = {}  # dead workers waiting for their restart
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def start(index: int) -> None:
        # Blocked until the worker is in ``workers``: a stop arriving meanwhile reaches
        # it (the child unblocks them once its own handlers are set).
        with _blocked(STOP_SIGNALS):
            process = context.Process(
                target=_worker,
                args=(index, settings, sock),
                name=f"worker-{index}",
            )
            process.start()
            workers[index], started_at[index] = process, time.monotonic()
        log.info("worker_started", worker=index, pid=process.pid)

    # Before the first fork: a signal during the start must not kill the parent alone
    # and leave its workers serving.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for index in range(count):
        if not stopping:
            start(index)
    log.info("workers_serving", workers=count, host=settings.host, port=settings.port)
    gave_up = False
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for index, process in list(workers.items()):
            if stopping:
                break
            if index in restart_at:
                if now >= restart_at[index]:
                    del restart_at[index]
                    start(index)
                continue
            if process.is_alive():
                continue
            uptime = now - started_at[index]
            quick_deaths[index] = quick_deaths[index] + 1 if uptime < QUICK_DEATH_S else 0
            log.warning(
                "worker_died", worker=index, exitcode=process.exitcode, uptime_s=round(uptime, 1)
            )
            if quick_deaths[index] >= MAX_QUICK_DEATHS:
                log.error(
                    "worker_keeps_dying",
                    worker=index,
                    deaths=quick_deaths[index],
                    hint="the workers' log lines above say why; stopping every worker",
                )
                gave_up = True
                stop(0, None)
                break
            restart_at[index] = now + RESTART_PAUSE_S * 2 ** max(0, quick_deaths[index] - 1)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in workers.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    sock.close()
    log.info("workers_stopped")
    if gave_up:
        raise SystemExit(1)


@contextmanager
def _blocked(signals: set[signal.Signals]) -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker(index: int, settings: Settings, sock: socket.socket) -> None:
    import structlog
    import uvicorn

    from pluggably.app import create_app
    from pluggably.serving import uvicorn_options

    # The parent's handlers stay with it (the signals are still blocked, as the parent
    # forked): until uvicorn installs its own for a graceful stop, one ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # Every line this worker logs says which worker it is (the server's tasks inherit it).
    structlog.contextvars.bind_contextvars(worker=index)
    application = create_app(settings)
    options = uvicorn_options(settings)
    server = uvicorn.Server(uvicorn.Config(application, **options))
    server.run(sockets=[sock])
