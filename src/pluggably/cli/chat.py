"""``pluggably chat``: an interactive session on a running server. Each line read from
stdin is a turn, its answer streamed to stdout; ``/reset`` clears the history,
``/exit`` (or the end of input) leaves. The session stays on the server: pass its id
to ``--session`` to go on with it later."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from pluggably.cli.common import CliError, connected, describe, one_line
from pluggably.cli.connection import Connection, Server, Token
from pluggably.cli.generate import ModelOpt, ParamOpt, ProviderOpt, SystemOpt
from pluggably.cli.output import note, parse_params, stream_response
from pluggably.client import Client, PluggablyError, SessionHandle
from pluggably.client.generation import TurnOptions

HELP = "/reset clears the history, /exit (or end of input) leaves"


def _lines() -> Iterator[str]:
    """Lines of stdin, with a prompt on stderr when a person types them."""
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    while True:
        if interactive:
            typer.echo("> ", nl=False, err=True)
            try:
                line = input()
            except EOFError:
                typer.echo(err=True)
                return
        else:
            line = sys.stdin.readline()
            if not line:
                return
        yield line


def _open(client: Client, session_id: str | None, system: str | None) -> SessionHandle:
    if session_id is None:
        return client.session(system_prompt=system)
    handle = client.session(session_id=session_id)
    if system is not None:
        client.sessions.update(handle.id, system_prompt=system)
    return handle


def _turn(
    client: Client, conn: Connection, handle: SessionHandle, text: str, options: TurnOptions
) -> bool:
    """One turn; False when it failed (said on stderr: the chat goes on)."""
    try:
        stream_response(client, handle.stream(text, **options))
    except KeyboardInterrupt:
        note("(stopped)")
    except PluggablyError as exc:
        note(f"pluggably: {describe(exc, conn)}")
        return False
    except CliError as exc:
        note(f"pluggably: {one_line(str(exc))}")
        return False
    return True


def chat(
    ctx: typer.Context,
    model: ModelOpt = None,
    provider: ProviderOpt = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Go on with this session (default: a new one).")
    ] = None,
    system: SystemOpt = None,
    param: ParamOpt = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Chat on a running server: one turn per line of input, answers streamed."""
    options: TurnOptions = {
        "model": model,
        "provider": provider,
        "parameters": parse_params(param) or None,
    }
    ok = True
    with connected(ctx, server, token) as (client, conn):
        handle = _open(client, session, system)
        note(f"session {handle.id}: {HELP}")
        for line in _lines():
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/reset":
                handle.reset()
                note("session reset")
            elif text.startswith("/"):
                note(f"unknown command {text.split()[0]}: {HELP}")
            else:
                ok = _turn(client, conn, handle, text, options) and ok
    if not ok:
        raise typer.Exit(1)
