"""`pluggably generate --modality embedding` against a real server (the OpenAI
simulator's embedding model): one JSON array a line, streamed or not, and --json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pluggably.cli.main import app
from tests.conftest import ADMIN_KEY, unused_port
from tests.fixtures.openai_sim import OpenAISim
from tests.serving.test_serve import start_server, stop_server

pytestmark = pytest.mark.slow
MODEL = "openai:text-embedding-3-small"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("embed-cli")
    with OpenAISim() as sim:
        port = unused_port()
        proc, log = start_server(
            tmp,
            port,
            PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=sim.base_url,
            PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
            PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
            PLUGGABLY_PRELOAD_DEFAULTS="false",
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(proc, log)


def run(server: str, tmp_path: Path, *args: str) -> list[str]:
    env = {"XDG_CONFIG_HOME": str(tmp_path), "COLUMNS": "200"}
    base = ["generate", "--server", server, "--token", ADMIN_KEY, "--modality", "embedding"]
    result = CliRunner().invoke(app, [*base, "--model", MODEL, *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("streaming", ["--stream", "--no-stream"])
def test_generate_prints_one_vector_a_line(server: str, tmp_path: Path, streaming: str) -> None:
    lines = run(server, tmp_path, streaming, "--param", "dimensions=4", "hello world")
    assert len(lines) == 1
    vector = json.loads(lines[0])
    assert len(vector) == 4
    assert abs(sum(v * v for v in vector) - 1) < 1e-6


def test_generate_json_prints_the_whole_response(server: str, tmp_path: Path) -> None:
    lines = run(server, tmp_path, "--json", "--no-stream", "hello world")
    answer = json.loads("\n".join(lines))
    assert answer["modality"] == "embedding"
    assert len(answer["output"]["embeddings"][0]) == 1536
    assert answer["usage"]["prompt_tokens"] == 2
