"""What every remote command shares: the client for one command, with its failures
turned into one line on stderr (exit 1 for the server's errors, 2 for usage and
configuration), and the ``--json`` output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import httpx
import typer
from pydantic import BaseModel
from rich.filesize import decimal

from pluggably.cli.connection import Connection, UsageError, connection
from pluggably.client import AuthError, Client, PluggablyError, TransportError, ValidationError

AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead.")]

T = TypeVar("T")


class Modality(StrEnum):
    text = "text"
    image = "image"
    three_d = "3d"
    embedding = "embedding"


class CliError(Exception):
    """A failure to report as one line on stderr; never a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(text: str) -> str:
    return " ".join(text.split())


def fail(message: str, exit_code: int) -> typer.Exit:
    typer.echo(f"pluggably: {one_line(message)}", err=True)
    return typer.Exit(exit_code)


def describe(exc: PluggablyError, conn: Connection) -> str:
    """One line for a failure of the client: the server's message, its HTTP status and code."""
    cause = exc.__cause__
    if isinstance(exc, TransportError) and isinstance(cause, httpx.ConnectError):
        return (
            f"cannot connect to the server at {conn.server} ({one_line(str(cause))}); "
            f"is `pluggably serve` running? (the URL is from {conn.server_from})"
        )
    message = exc.message
    if isinstance(exc, ValidationError) and isinstance(exc.details, list):
        # The envelope's message names the fields; their reasons are in details.
        reasons = [str(d.get("msg", "")) for d in exc.details if isinstance(d, dict)]
        message = f"{message} {'; '.join(r for r in reasons if r)}".strip()
    if isinstance(exc, AuthError) and not conn.token:
        message += " Pass --token or set PLUGGABLY_TOKEN."
    where = f"HTTP {exc.status}, " if exc.status is not None else ""
    return f"{one_line(message)} ({where}{exc.code})"


@contextmanager
def connected(
    ctx: typer.Context, server: str | None, token: str | None
) -> Iterator[tuple[Client, Connection]]:
    """The client of one command and where it connects; a failure inside ends the
    command with one line."""
    try:
        conn = connection(ctx, server, token)
    except UsageError as exc:
        raise fail(str(exc), 2) from None
    client = Client(conn.server, token=conn.token)
    try:
        yield client, conn
    except PluggablyError as exc:
        raise fail(describe(exc, conn), 1) from None
    except CliError as exc:
        raise fail(str(exc), exc.exit_code) from None
    finally:
        client.close()


@contextmanager
def remote(ctx: typer.Context, server: str | None, token: str | None) -> Iterator[Client]:
    """``connected``, for the commands that need only the client."""
    with connected(ctx, server, token) as (client, _):
        yield client


def answer(
    ctx: typer.Context,
    server: str | None,
    token: str | None,
    as_json: bool,
    ask: Callable[[Client], T],
    show: Callable[[T], None],
) -> None:
    """A command that is one question to the server: its answer as the server's JSON
    with --json, else as ``show`` prints it (after the connection is closed)."""
    with remote(ctx, server, token) as client:
        found = ask(client)
    if as_json:
        emit_json(found)
    else:
        show(found)


def plain(data: Any) -> Any:
    """A response model (or a list of them) as the API's JSON."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", by_alias=True)
    if isinstance(data, list):
        return [plain(d) for d in data]
    return data


def emit_json(data: Any, *, indent: int | None = 2) -> None:
    typer.echo(json.dumps(plain(data), indent=indent))


def size(value: int | None) -> str:
    return decimal(value) if value is not None else "-"


def when(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")
