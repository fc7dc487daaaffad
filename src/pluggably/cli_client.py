"""The HTTP side of the CLI: one small client of a running Pluggably server, its
error mapping (one line, no traceback) and SSE reading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import typer

from pluggably import __version__

EVENTS_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=60.0)
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@dataclass(frozen=True)
class Target:
    server: str
    token: str | None


class CliError(Exception):
    """A failure to report as one line on stderr; never a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- where to connect ---------------------------------------------------------------------


# -- HTTP -----------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Api:
    """One server: its base URL and credential, with its error envelope turned into CliError."""

    def __init__(self, target: Target) -> None:
        headers = {"User-Agent": f"pluggably-cli/{__version__}"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self.target = target
        self._client = httpx.Client(
            base_url=target.server, headers=headers, timeout=REQUEST_TIMEOUT
        )

    def close(self) -> None:
        self._client.close()

    def call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """The decoded JSON answer (None for an empty one), or CliError."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(method, path, params=clean, json=body)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._check(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"the server at {self.target.server} did not answer JSON; is it a Pluggably server?"
            ) from None

    def events(self, path: str) -> Iterator[dict[str, Any]]:
        """The ``data:`` frames of an SSE stream until ``[DONE]``; comments are keep-alives."""
        try:
            with self._client.stream(
                "GET", path, timeout=EVENTS_TIMEOUT, headers={"Accept": "text/event-stream"}
            ) as response:
                if not response.is_success:
                    response.read()
                    self._check(response)
                yield from _sse_frames(response.iter_lines())
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.TransportError) -> CliError:
        server = self.target.server
        if isinstance(exc, httpx.ConnectError):
            hint = "is `pluggably serve` running? set --server or PLUGGABLY_URL"
            return CliError(
                f"cannot connect to the server at {server} ({_one_line(str(exc))}); {hint}"
            )
        if isinstance(exc, httpx.TimeoutException):
            return CliError(f"the server at {server} did not answer in time")
        return CliError(
            f"the connection to {server} failed: {_one_line(str(exc)) or type(exc).__name__}"
        )

    def _check(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            detail = response.json()["detail"]
            message, code = str(detail["message"]), str(detail["code"])
        except (ValueError, KeyError, TypeError):
            raise CliError(
                f"HTTP {response.status_code} from {self.target.server}{response.request.url.path}"
            ) from None
        if code == "validation_error" and isinstance(detail.get("details"), list):
            # The envelope's message names the fields; their reasons are in details.
            reasons = [str(d.get("msg", "")) for d in detail["details"] if isinstance(d, dict)]
            message = f"{message} {'; '.join(r for r in reasons if r)}".strip()
        if code == "unauthorized" and not self.target.token:
            message += " Pass --token or set PLUGGABLY_TOKEN."
        raise CliError(f"{_one_line(message)} ({code})")


def _sse_frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:  # a blank line ends an event
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                return
            try:
                yield json.loads(payload)
            except ValueError:
                raise CliError(f"the server sent an unreadable event: {payload[:80]!r}") from None
        # other lines: ': keep-alive' comments and fields we do not use (event:, id:, retry:)


@contextmanager
def _api(target: Target) -> Iterator[Api]:
    """The client for one command; any CliError inside ends it with one line and exit 1."""
    api = Api(target)
    try:
        yield api
    except CliError as exc:
        typer.echo(f"pluggably: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    finally:
        api.close()
