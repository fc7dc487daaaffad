"""`pluggably models` and `pluggably jobs` against a real `pluggably serve` process that
downloads from the loopback Hugging Face hub."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from pluggably.cli.jobs import jobs_app
from pluggably.cli.models import models_app
from tests.conftest import ADMIN_KEY, unused_port
from tests.fixtures.hf_hub import FakeHub
from tests.serving.test_serve import start_server, stop_server

pytestmark = pytest.mark.slow

MB = 1 << 20
TINY = ("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")
SLOW = ("acme/slow-GGUF", "slow-Q4_0.gguf")
# Wide enough that rich tables never wrap an id or a file name.
WIDE = {"COLUMNS": "200"}


def gguf_bytes(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 32
    return (b"GGUF" + block * (size // len(block) + 1))[:size]


@dataclass
class Live:
    url: str
    hub: FakeHub


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the module: starting one costs more than all these tests together."""
    tmp = tmp_path_factory.mktemp("cli-models")
    with FakeHub() as hub:
        for (repo, filename), size, seed in ((TINY, MB, 1), (SLOW, 2 * MB, 2)):
            hub.add_model(
                repo,
                {filename: gguf_bytes(size, seed)},
                tags=("gguf",),
                pipeline_tag="text-generation",
                library_name="gguf",
                downloads=100 * seed,
            )
        port = unused_port()
        proc, log = start_server(
            tmp, port, PLUGGABLY_HF_ENDPOINT=hub.url, HF_HOME=str(tmp / "hf-home")
        )
        try:
            yield Live(f"http://127.0.0.1:{port}", hub)
        finally:
            stop_server(proc, log)
    assert not hub.errors, f"the fake hub itself failed: {hub.errors!r}"


def cli(app: typer.Typer, live: Live, *args: str, token: str = ADMIN_KEY, **kw: Any) -> Result:
    return CliRunner().invoke(app, [*args, "--server", live.url, "--token", token], env=WIDE, **kw)


def cli_process(*args: str) -> subprocess.Popen[str]:
    """The CLI as its own process: for signals, and to see exactly what a user sees."""
    code = "from pluggably.cli.models import models_app; models_app(prog_name='pluggably models')"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line; exit {proc.wait()}")


def job_of(live: Live, model_id: str) -> dict[str, Any]:
    result = cli(jobs_app, live, "list", "--json")
    assert result.exit_code == 0, result.output
    return next(j for j in json.loads(result.stdout)["jobs"] if j["model_id"] == model_id)


def test_search_shows_the_repo_and_its_gguf_files(live: Live) -> None:
    result = cli(models_app, live, "search", "tiny")
    assert result.exit_code == 0, result.output
    assert "acme/tiny-GGUF" in result.stdout
    assert "tiny-Q4_K_M.gguf (1.0 MB)" in result.stdout
    assert "acme/slow-GGUF" not in result.stdout

    raw = cli(models_app, live, "search", "GGUF", "--modality", "text", "--limit", "1", "--json")
    assert raw.exit_code == 0, raw.output
    page = json.loads(raw.stdout)
    assert [r["id"] for r in page["results"]] == ["acme/slow-GGUF"]  # most downloads first
    assert page["results"][0]["files"] == [{"filename": SLOW[1], "size_bytes": 2 * MB}]
    assert page["next_cursor"]


def test_pull_list_jobs_and_rm(live: Live) -> None:
    model_id = "acme/tiny-GGUF/tiny-Q4_K_M"
    pulled = cli(models_app, live, "pull", TINY[0], "--file", TINY[1])
    assert pulled.exit_code == 0, pulled.output
    assert f"model {model_id} is ready" in pulled.stdout
    # The progress bar is on stderr (its last state when that is not a terminal).
    bar = next(line for line in pulled.stderr.splitlines() if line.startswith(model_id))
    assert "1.0/1.0 MB" in bar
    assert bar.rstrip().endswith("completed")

    listed = cli(models_app, live, "list", "--json")
    assert listed.exit_code == 0, listed.output
    model = next(m for m in json.loads(listed.stdout)["models"] if m["id"] == model_id)
    assert (model["status"], model["size_bytes"], model["format"]) == ("available", MB, "gguf")
    table = cli(models_app, live, "list", "--modality", "text")
    assert model_id in table.stdout

    job = job_of(live, model_id)
    assert (job["status"], job["bytes_done"]) == ("completed", MB)
    assert job["job_id"] in cli(jobs_app, live).stdout  # `pluggably jobs` alone lists them

    declined = cli(models_app, live, "rm", model_id, input="n\n")
    assert declined.exit_code == 1
    assert model_id in cli(models_app, live, "list").stdout
    removed = cli(models_app, live, "rm", model_id, "--yes")
    assert removed.exit_code == 0, removed.output
    after = json.loads(cli(models_app, live, "list", "--json").stdout)
    assert model_id not in [m["id"] for m in after["models"]]
    again = cli(models_app, live, "rm", model_id, "--yes")
    assert again.exit_code == 1
    assert again.stderr.startswith("pluggably: ")
    assert again.stderr.rstrip().endswith("(HTTP 404, model_not_found)")


def test_server_errors_are_one_line_with_their_code(live: Live) -> None:
    missing = cli(models_app, live, "pull", "acme/does-not-exist")
    assert missing.exit_code == 1
    assert missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("pluggably: ")
    assert "has no model 'acme/does-not-exist'" in missing.stderr  # the server's own message
    assert missing.stderr.rstrip().endswith("(HTTP 404, model_not_found)")
    assert missing.exception is None or isinstance(missing.exception, SystemExit)

    denied = cli(models_app, live, "list", token="not-a-valid-token")
    assert denied.exit_code == 1
    assert denied.stderr.rstrip().endswith("(HTTP 401, unauthorized)")

    bad = cli(models_app, live, "pull", TINY[0], "--sha256", "xyz")
    assert bad.exit_code == 2  # a usage error, refused before any request


def test_unreachable_server_is_one_line_naming_it(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    proc = cli_process("list", "--server", url)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"pluggably: cannot connect to the server at {url} ")
    assert "Traceback" not in err


def test_ctrl_c_leaves_the_job_running_and_a_cancelled_job_fails_the_pull(live: Live) -> None:
    live.hub.throttle_bps = 256 * 1024  # 8 s for the 2 MB file: time to interrupt it
    model_id = f"{SLOW[0]}/{SLOW[1].removesuffix('.gguf')}"
    args = ("pull", SLOW[0], "--file", SLOW[1], "--server", live.url, "--token", ADMIN_KEY)
    try:
        follower = cli_process(*args)
        job_id = wait_for_line(follower, "following job ").split()[2]
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 130, err
        assert f"pluggably jobs cancel {job_id}" in err
        assert "Traceback" not in err
        assert job_of(live, model_id)["status"] in ("queued", "running")

        # The same pull again follows the same job (no second transfer); cancelling it
        # from elsewhere ends that pull with an error.
        follower = cli_process(*args)
        assert wait_for_line(follower, "following job ").split()[2] == job_id
        cancelled = cli(jobs_app, live, "cancel", job_id)
        assert cancelled.exit_code == 0, cancelled.output
        assert f"job {job_id} cancelled" in cancelled.stdout
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 1, err
        assert f"pluggably: download of {model_id} was cancelled" in err
        assert job_of(live, model_id)["status"] == "cancelled"
    finally:
        live.hub.throttle_bps = None
        live.hub.wait_idle()
