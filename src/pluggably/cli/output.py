"""Showing a generation: streamed text as it comes, waiting notes on stderr, and the
images, meshes and previews of a response written as files."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from pluggably.artifacts.schemas import extension_of
from pluggably.cli.common import CliError, fail, plain
from pluggably.client import (
    Client,
    Complete,
    Loading,
    ModelSelected,
    Queued,
    StatusChanged,
    StreamError,
    StreamEvent,
    TextDelta,
)
from pluggably.generation.schemas import GenerateResponse

_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"glTF", "glb"))


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """``--param k=v``: ``v`` as JSON when it reads as JSON (numbers, booleans, lists),
    else as a string."""
    params: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param: {item!r} is not KEY=VALUE", 2)
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


# -- text -------------------------------------------------------------------------------------


class TextOut:
    """Text to stdout as it arrives, ending with exactly one newline."""

    def __init__(self) -> None:
        self.last = "\n"
        self.chars = 0

    def write(self, text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.last = text[-1]
            self.chars += len(text)

    def end(self) -> None:
        if self.last != "\n":
            self.write("\n")


def note(message: str) -> None:
    typer.echo(message, err=True)


def _close(events: Iterator[Any]) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        close()  # leaving a stream early closes its connection (the server stops)


def _show(event: StreamEvent, out: TextOut) -> str | None:
    """Show one event; the request id it names, if any."""
    if isinstance(event, TextDelta):
        out.write(event.text)
    elif isinstance(event, Queued):
        where = f" at position {event.queue_position}" if event.queue_position else ""
        note(f"queued{where}")
        return event.request_id
    elif isinstance(event, Loading):
        note(f"loading {event.model}")
    elif isinstance(event, ModelSelected):
        if event.fallback_used:
            note(f"answered by {event.model} (fallback: {event.fallback_reason})")
        return event.request_id
    elif isinstance(event, StreamError):
        raise event.exception()
    return None


def follow_events(
    events: Iterator[StreamEvent], out: TextOut, *, statuses: bool = False
) -> StatusChanged | None:
    """A request's own event stream (``requests events``): its text, its status changes
    (on stderr with ``statuses``), and its last status."""
    last: StatusChanged | None = None
    try:
        for event in events:
            if isinstance(event, StatusChanged):
                last = event
                if statuses:
                    out.end()  # a status line after text starts on a line of its own
                    note(f"request {event.request_id} is {event.status}")
            else:
                _show(event, out)
    finally:
        _close(events)
    return last


def _streamed(
    events: Iterator[StreamEvent], out: TextOut
) -> tuple[GenerateResponse | None, str | None, list[str]]:
    """(the response, the request id, the text pieces) of a generation stream."""
    parts: list[str] = []
    request_id: str | None = None
    response: GenerateResponse | None = None
    try:
        for event in events:
            request_id = _show(event, out) or request_id
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Complete):
                response = event.response
    finally:
        _close(events)
    return response, request_id, parts


def stream_response(client: Client, events: Iterator[StreamEvent]) -> GenerateResponse:
    """Print a generation's text as it streams; the final response (its text included).

    A request that the server queued (202) is followed to its end by its id."""
    out = TextOut()
    try:
        response, request_id, parts = _streamed(events, out)
        if response is None and request_id is not None:
            follow_events(client.requests.events(request_id), out)
            response = client.wait_for(request_id)
            if not out.chars and response.output.text:  # it did not stream here: show it
                out.write(response.output.text)
            parts = []
    finally:
        out.end()  # also after a failure: the error line must not follow the text
    if response is None:
        raise CliError("the stream ended without a result")
    if response.output.text is None and parts:
        output = response.output.model_copy(update={"text": "".join(parts)})
        response = response.model_copy(update={"output": output})
    return response


def _lines_of(events: Iterator[StreamEvent]) -> tuple[GenerateResponse | None, str | None]:
    response: GenerateResponse | None = None
    queued: str | None = None
    try:
        for event in events:
            typer.echo(json.dumps(plain(event)))
            if isinstance(event, Complete):
                response = event.response
            elif isinstance(event, Queued):
                queued = event.request_id
            elif isinstance(event, StreamError):
                raise event.exception()
    finally:
        _close(events)
    return response, queued


def json_lines(client: Client, events: Iterator[StreamEvent]) -> GenerateResponse:
    """Print each event as one line of JSON; the final response. A request that the
    server queued (202) is followed by its id, and its result printed as ``complete``."""
    response, queued = _lines_of(events)
    if response is None and queued is not None:
        _lines_of(client.requests.events(queued))
        response = client.wait_for(queued)
        typer.echo(json.dumps(plain(Complete(response=response))))
    if response is None:
        raise CliError("the stream ended without a result")
    return response


# -- files ------------------------------------------------------------------------------------


def _decode(value: str, what: str) -> bytes:
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise CliError(f"the server sent {what} that is not valid base64") from None


def _sniff(data: bytes, default: str) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"ply"):
        return "ply"
    return default


class _Writer:
    def __init__(self, out_dir: Path, request_id: str) -> None:
        self.out_dir = out_dir
        self.request_id = request_id
        self.counts: dict[str, int] = {}
        self.paths: list[Path] = []

    def write(self, kind: str, ext: str, data: bytes) -> None:
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        suffix = "" if n == 1 else f"-{n}"
        path = self.out_dir / f"{self.request_id}-{kind}{suffix}.{ext}"
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as f:  # never overwrite: request ids are unique anyway
                f.write(data)
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror}") from None
        self.paths.append(path)


def save_files(client: Client, response: GenerateResponse, out_dir: Path) -> list[Path]:
    """Write the response's images, mesh and artifacts (downloaded through their signed
    links) into ``out_dir``; their paths."""
    writer = _Writer(out_dir, response.request_id)
    output = response.output
    for image in output.images:
        data = _decode(image, "an image")
        writer.write("image", _sniff(data, "png"), data)
    if output.mesh:
        data = _decode(output.mesh, "a mesh")
        writer.write("mesh", _sniff(data, "obj"), data)
    for artifact in output.artifacts:
        data = client.artifacts.download(artifact)
        ext = extension_of(artifact.content_type) or _sniff(data, "bin")
        writer.write(artifact.type, ext, data)
    return writer.paths
