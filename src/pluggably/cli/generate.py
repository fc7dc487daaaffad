"""``pluggably generate PROMPT``: one generation on a running server. Text is printed
(streamed by default); images, meshes and previews are written as files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from pluggably.cli.common import AsJson, Modality, emit_json, fail, remote
from pluggably.cli.connection import Server, Token
from pluggably.cli.output import json_lines, note, parse_params, save_files, stream_response
from pluggably.client import Client, GenerateOptions
from pluggably.generation.schemas import Accepted, GenerateResponse

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model id, e.g. openai:gpt-4o-mini (default: the server's choice)."
    ),
]
ProviderOpt = Annotated[
    str | None, typer.Option("--provider", help="Only this provider (its default model).")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help="A model parameter KEY=VALUE (VALUE read as JSON when it is), repeatable.",
    ),
]
SystemOpt = Annotated[str | None, typer.Option("--system", help="System prompt.")]


def _prompt(value: str) -> str:
    if value != "-":
        return value
    text = sys.stdin.read().rstrip("\n")
    if not text.strip():
        raise fail("PROMPT is '-' and standard input is empty", 2)
    return text


def _wait(client: Client, result: GenerateResponse | Accepted) -> GenerateResponse:
    if isinstance(result, GenerateResponse):
        return result
    note(f"queued at position {result.queue_position} (request {result.request_id})")
    return client.wait_for(result)


def _files(client: Client, response: GenerateResponse, out: Path, as_json: bool) -> None:
    for path in save_files(client, response, out):
        typer.echo(str(path), err=as_json)  # stdout stays one JSON document with --json


def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt ('-': read it from stdin).")],
    model: ModelOpt = None,
    provider: ProviderOpt = None,
    modality: Annotated[
        Modality | None,
        typer.Option(help="What to generate (default: what the model makes)."),
    ] = None,
    param: ParamOpt = None,
    system: SystemOpt = None,
    session: Annotated[
        str | None, typer.Option("--session", help="A turn of this session.")
    ] = None,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Stream text as it is generated (default: on, off with --json). With --json: "
            "one JSON event per line.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for images, meshes and previews.")
    ] = Path("."),
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Generate text (printed), embeddings (--modality embedding: one JSON array a
    line), or images and 3D meshes (written into --out)."""
    options: GenerateOptions = {
        "model": model,
        "provider": provider,
        "modality": modality.value if modality else None,
        "parameters": parse_params(param) or None,
        "system_prompt": system,
        "session_id": session,
    }
    text = _prompt(prompt)
    streaming = stream if stream is not None else not as_json
    with remote(ctx, server, token) as client:
        if streaming and as_json:
            response = json_lines(client, client.generate_stream(text, **options))
        elif streaming:
            response = stream_response(client, client.generate_stream(text, **options))
        else:
            response = _wait(client, client.generate(text, **options))
            if as_json:
                emit_json(response)
            elif response.output.text is not None:
                typer.echo(response.output.text)
        if response.output.embeddings is not None and not as_json:
            for vector in response.output.embeddings:  # one JSON array a line
                typer.echo(orjson.dumps(vector).decode())
        _files(client, response, out, as_json)
