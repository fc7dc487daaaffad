"""structlog configuration: logs go to stderr, one JSON object per line, or in the
console format when a person is watching (stderr is a terminal) or asks for it.

Only explicit fields are logged; nothing in this package ever passes headers,
bodies or credentials to a logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and the stdlib loggers to ``stream`` (stderr by default). ``auto``
    is ``console`` on a terminal and ``json`` anywhere else (a file, a pipe, a log
    collector), so ``make serve`` is readable and deployments stay parseable."""
    out = stream if stream is not None else sys.stderr
    terminal = bool(getattr(out, "isatty", lambda: False)())
    if fmt == "auto":
        fmt = "console" if terminal else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Plain tracebacks only: rich tracebacks would print every frame's local
    # variables, and those can hold a decrypted credential.
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=terminal,
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Route stdlib loggers (uvicorn, alembic, sqlalchemy) through the same renderer.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs full URLs at INFO, and some vendors take keys in the query string.
    quiet = (
        "uvicorn.access",
        "alembic.runtime.migration",
        "aiosqlite",
        "asyncio",
        "httpx",
        "httpx2",
        "httpcore",
    )
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
