"""instructor on the OpenAI surface (/openai/v1): its current release cannot share this
project's venv (tests/fixtures/framework_venv.py says why), so it runs in a venv of its own
(installed on first use within tests/fixtures/instructor-constraints.txt) as a subprocess,
with the official openai SDK it pins, against a real `pluggably serve` over the OpenAI
simulator. The simulator answers a forced tool call or a json_schema response format with
the schema's instance, which instructor validates into its response model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY
from tests.fixtures.framework_venv import framework_python
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import serve_with

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE.parents[1] / "fixtures" / "instructor-constraints.txt"
FORECAST = {"city": "city-1", "degrees": 1, "sky": "clear"}  # the simulator's instance


@pytest.fixture(scope="module")
def instructor_python() -> Path:
    return framework_python("instructor", "instructor==1.17.0", CONSTRAINTS)


def instructor_through_the_gateway(
    tmp_path: Path, port: int, sim: OpenAISim, python: Path, mode: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """instructor's answer in ``mode`` through a real server, and the one request it made
    upstream (valid at once: no retry carrying a validation error)."""
    from tests.serving.test_serve import stop_server

    proc, log_path = serve_with(tmp_path, port, sim)
    try:
        base_url = f"http://127.0.0.1:{port}/openai/v1"
        done = subprocess.run(
            [str(python), str(HERE / "instructor_client.py"), base_url, ADMIN_KEY, mode],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop_server(proc, log_path)
    assert done.returncode == 0, done.stderr
    sent = [r.body for r in sim.requests_to("/v1/chat/completions")]
    assert len(sent) == 1
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer, sent[0]


@pytest.mark.slow
def test_instructor_tools_mode_returns_the_model_from_a_forced_tool_call(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim, instructor_python: Path
) -> None:
    answer, sent = instructor_through_the_gateway(
        tmp_path, free_port, openai_sim, instructor_python, "TOOLS"
    )
    assert answer == FORECAST
    assert [t["function"]["name"] for t in sent["tools"]] == ["Forecast"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Forecast"}}


@pytest.mark.slow
def test_instructor_json_schema_mode_returns_the_model_from_structured_output(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim, instructor_python: Path
) -> None:
    answer, sent = instructor_through_the_gateway(
        tmp_path, free_port, openai_sim, instructor_python, "JSON_SCHEMA"
    )
    assert answer == FORECAST
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Forecast"
    assert "tools" not in sent
