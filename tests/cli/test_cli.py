"""The remote commands of `pluggably` (generate, chat, models, requests) end to end:
the CLI (typer's runner, or its own process where stdin, signals or exactly what a
user sees matter) against a real `pluggably serve` process whose openai provider is
the simulator, with the bundled Gemma on disk for load/unload."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from pluggably.cli import app
from pluggably.cli.connection import DEFAULT_URL, Flags, UsageError, resolve
from tests.conftest import ADMIN_KEY, unused_port
from tests.fixtures.openai_sim import OpenAISim
from tests.serving.test_serve import start_server, stop_server

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).with_name("pluggably")
MODEL = "openai:gpt-4o-mini"
GEMMA = "local/gemma"
PNG = b"\x89PNG"
BAD_TOKEN = "not-a-valid-token-0000"


@dataclass
class Live:
    url: str
    sim: OpenAISim
    home: Path  # XDG_CONFIG_HOME of every CLI run: a user's own cli.toml must not leak in
    gemma: bool


def _link_gemma(request: pytest.FixtureRequest, models: Path) -> bool:
    try:
        gguf: Path = request.getfixturevalue("gemma_gguf")
    except pytest.skip.Exception:  # the 'local' extra is not installed
        return False
    os.link(gguf, models / "gemma.gguf")
    return True


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Live]:
    """One server for the module: starting one costs more than most of these tests."""
    tmp = tmp_path_factory.mktemp("cli")
    models = tmp / "data" / "models"
    models.mkdir(parents=True)
    gemma = _link_gemma(request, models)
    home = tmp / "home-config"
    home.mkdir()
    with OpenAISim() as sim:
        port = unused_port()
        proc, log = start_server(
            tmp,
            port,
            PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=sim.base_url,
            PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
            PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
            # A 256x256 PNG of the simulator comes inline, a 1024x1024 one as a link.
            PLUGGABLY_INLINE_OUTPUT_BYTES="2048",
            PLUGGABLY_PRELOAD_DEFAULTS="false",
        )
        try:
            yield Live(f"http://127.0.0.1:{port}", sim, home, gemma)
        finally:
            stop_server(proc, log)
    assert not sim.errors, f"the OpenAI simulator itself failed: {sim.errors!r}"


@pytest.fixture
def sim(live: Live) -> Iterator[OpenAISim]:
    yield live.sim
    live.sim.reset_faults()
    live.sim.set_reply("gpt-4o-mini", None)
    live.sim.token_delay_s = 0.0


def env_of(live: Live, **extra: str | None) -> dict[str, str | None]:
    """The environment of one run: connection from the environment unless overridden."""
    env: dict[str, str | None] = {
        "COLUMNS": "200",  # rich tables never wrap an id
        "XDG_CONFIG_HOME": str(live.home),
        "PLUGGABLY_SERVER_URL": live.url,
        "PLUGGABLY_TOKEN": ADMIN_KEY,
    }
    env.update(extra)
    return env


def cli(live: Live, *args: str, input: str | None = None, **env: str | None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env_of(live, **env))


def cli_process(
    live: Live, *args: str, input: str | None = None, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """The installed `pluggably` as its own process: real pipes, exactly what a user sees."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    full.update({k: v for k, v in env_of(live, **env).items() if v is not None})
    return subprocess.run(
        [str(BIN), *args],
        input=input,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error_line(stderr: str) -> str:
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("pluggably: "), stderr
    assert "Traceback" not in stderr
    return stderr.rstrip("\n")


# -- generate ---------------------------------------------------------------------------------


def test_generate_streams_text_by_default(live: Live, sim: OpenAISim) -> None:
    result = cli(live, "generate", "hello there", "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Echo: hello there\n"
    assert sim.requests_to("/v1/chat/completions")[-1].body["stream"] is True

    plain = cli(
        live, "generate", "hello there", "-m", MODEL, "--no-stream", "-p", "temperature=0.5"
    )
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == "Echo: hello there\n"
    upstream = sim.requests_to("/v1/chat/completions")[-1].body
    assert not upstream.get("stream")
    assert upstream["temperature"] == 0.5  # --param k=v, the value read as JSON

    piped = cli(live, "generate", "-", "-m", MODEL, "--system", "Be brief.", input="from stdin\n")
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == "Echo: from stdin\n"
    sent = sim.requests_to("/v1/chat/completions")[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}


def test_generate_json_is_the_response_or_one_event_per_line(live: Live, sim: OpenAISim) -> None:
    result = cli(live, "generate", "hello there", "-m", MODEL, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["output"]["text"] == "Echo: hello there"
    assert (body["model"], body["modality"], body["finish_reason"]) == (MODEL, "text", "stop")
    assert not sim.requests_to("/v1/chat/completions")[-1].body.get("stream")

    streamed = cli(live, "generate", "hello there", "-m", MODEL, "--json", "--stream")
    assert streamed.exit_code == 0, streamed.output
    events = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert events[0]["event"] == "model_selected"
    assert events[-1]["event"] == "complete"
    assert "".join(e["text"] for e in events if e["event"] == "text_delta") == "Echo: hello there"
    assert events[-1]["response"]["request_id"] == events[0]["request_id"]


def test_generate_writes_images_inline_and_linked(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    small = cli(
        live, "generate", "a red square", "-m", "openai:dall-e-2",
        "-p", "width=256", "-p", "height=256", "--out", str(out),
    )  # fmt: skip
    assert small.exit_code == 0, small.output
    (path,) = [Path(line) for line in small.stdout.splitlines()]
    assert path.parent == out
    assert path.suffix == ".png"
    assert path.read_bytes().startswith(PNG)

    # Past the inline threshold the server answers a signed link; the CLI downloads it.
    big = cli(live, "generate", "a red square", "-m", "openai:dall-e-2", "--json", "-o", str(out))
    assert big.exit_code == 0, big.output
    body = json.loads(big.stdout)
    (artifact,) = body["output"]["artifacts"]
    assert body["output"]["images"] == []
    (linked,) = [Path(line) for line in big.stderr.splitlines()]  # stdout is the JSON
    assert linked.name.startswith(body["request_id"])
    assert linked.read_bytes().startswith(PNG)
    assert linked.stat().st_size == artifact["size_bytes"]
    assert sorted(out.iterdir()) == sorted([path, linked])


# -- chat -------------------------------------------------------------------------------------


def test_chat_keeps_the_session_resets_and_resumes(live: Live, sim: OpenAISim) -> None:
    sim.set_reply("gpt-4o-mini", lambda body: f"answer {len(body['messages'])}")
    before = len(sim.requests_to("/v1/chat/completions"))
    lines = "My name is Zed.\nWhat is my name?\n/reset\n/bogus\nHello again\n"
    result = cli_process(live, "chat", "--model", MODEL, input=lines)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["answer 1", "answer 3", "answer 1"]
    assert "session reset" in result.stderr
    assert "unknown command /bogus" in result.stderr

    turns = [r.body["messages"] for r in sim.requests_to("/v1/chat/completions")[before:]]
    assert len(turns) == 3
    assert turns[1] == [
        {"role": "user", "content": "My name is Zed."},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "What is my name?"},
    ]
    assert turns[2] == [{"role": "user", "content": "Hello again"}]  # after /reset

    # The session stays on the server: --session goes on with it (/exit ends early).
    session_id = result.stderr.split()[1].rstrip(":")
    assert session_id.startswith("ses_")
    again = cli(
        live, "chat", "-m", MODEL, "--session", session_id, input="And now?\n/exit\nNot sent\n"
    )
    assert again.exit_code == 0, again.output
    assert again.stdout == "answer 3\n"
    last = sim.requests_to("/v1/chat/completions")[-1].body["messages"]
    assert [m["content"] for m in last] == ["Hello again", "answer 1", "And now?"]


def test_chat_reports_a_failed_turn_and_goes_on(live: Live, sim: OpenAISim) -> None:
    sim.fail_next(status=400)  # an upstream error the gateway does not retry elsewhere
    result = cli(live, "chat", "-m", MODEL, input="first\nsecond\n")
    assert result.exit_code == 1  # a turn failed
    assert result.stdout == "Echo: second\n"
    errors = [line for line in result.stderr.splitlines() if line.startswith("pluggably: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].endswith("(invalid_parameter)")  # met in the stream: no HTTP status

    unknown = cli(live, "chat", "--session", "ses_missing", input="hi\n")
    assert unknown.exit_code == 1
    assert one_error_line(unknown.stderr).endswith("(HTTP 404, session_not_found)")


# -- models -----------------------------------------------------------------------------------


def _model(live: Live, model_id: str) -> dict[str, Any]:
    listed = cli(live, "models", "list", "--provider", "local", "--json")
    assert listed.exit_code == 0, listed.output
    return next(m for m in json.loads(listed.stdout)["models"] if m["id"] == model_id)


def test_models_load_and_unload_a_local_model(live: Live) -> None:
    if not live.gemma:
        pytest.skip("the bundled model (the 'local' extra)")
    assert _model(live, GEMMA)["runtime_status"] == "unloaded"

    loaded = cli(live, "models", "load", GEMMA, "--wait")
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout == f"model {GEMMA} is loaded\n"
    assert _model(live, GEMMA)["runtime_status"] == "loaded"
    table = cli(live, "models", "list", "--provider", "local")
    row = next(line for line in table.stdout.splitlines() if GEMMA in line)
    assert "loaded" in row
    again = cli(live, "models", "load", GEMMA, "--json")
    assert json.loads(again.stdout) == {"model_id": GEMMA, "status": "loaded"}

    unloaded = cli(live, "models", "unload", GEMMA, "--force")
    assert unloaded.exit_code == 0, unloaded.output
    assert unloaded.stdout == f"model {GEMMA} is unloaded\n"
    assert _model(live, GEMMA)["runtime_status"] == "unloaded"


def test_models_list_and_errors_are_one_line_with_status_and_code(live: Live) -> None:
    listed = cli(live, "models", "list", "--json")
    assert listed.exit_code == 0, listed.output
    ids = {m["id"] for m in json.loads(listed.stdout)["models"]}
    assert {MODEL, "openai:dall-e-2"} <= ids

    for stream in ("--stream", "--no-stream"):
        unknown = cli(live, "generate", "hi", "-m", "openai:nope", stream)
        assert unknown.exit_code == 1
        assert unknown.stdout == ""
        line = one_error_line(unknown.stderr)
        assert "nope" in line
        assert line.endswith(
            "(model_not_found)" if stream == "--stream" else "(HTTP 404, model_not_found)"
        )

    missing = cli(live, "models", "load", "local/nope")
    assert missing.exit_code == 1
    line = one_error_line(missing.stderr)
    assert "'local/nope'" in line
    assert line.endswith("(HTTP 404, model_not_found)")


# -- requests ---------------------------------------------------------------------------------


def test_requests_status_show_and_events_of_a_finished_request(live: Live) -> None:
    made = cli(live, "generate", "remember me", "-m", MODEL, "--json")
    request_id = json.loads(made.stdout)["request_id"]

    status = cli(live, "requests", "status", request_id)
    assert status.exit_code == 0, status.output
    assert "status    completed" in status.stdout.splitlines()
    as_json = json.loads(cli(live, "requests", "status", request_id, "--json").stdout)
    assert (as_json["request_id"], as_json["status"], as_json["model"]) == (
        request_id,
        "completed",
        MODEL,
    )
    shown = cli(live, "requests", "show", request_id)
    assert shown.stdout.endswith("\nEcho: remember me\n")
    details = json.loads(cli(live, "requests", "show", request_id, "--json").stdout)
    assert details["result"]["output"]["text"] == "Echo: remember me"
    followed = cli(live, "requests", "events", request_id)
    assert followed.exit_code == 0, followed.output
    assert f"request {request_id} is completed" in followed.stderr
    events = cli(live, "requests", "events", request_id, "--json").stdout.splitlines()
    assert [json.loads(e) for e in events] == [
        {"event": "status", "request_id": request_id, "status": "completed"}
    ]
    nothing = cli(live, "requests", "cancel", request_id)
    assert nothing.stdout == f"request {request_id} is completed; nothing to cancel\n"

    unknown = cli(live, "requests", "status", "req_missing")
    assert unknown.exit_code == 1
    assert one_error_line(unknown.stderr).endswith("(HTTP 404, request_not_found)")


def test_requests_cancel_stops_a_running_generation(live: Live, sim: OpenAISim) -> None:
    sim.token_delay_s = 0.05  # 200 words: 10 s, time enough to look at it and cancel it
    prompt = " ".join(f"w{i}" for i in range(200))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGGABLY_")}
    env.update({k: v for k, v in env_of(live).items() if v is not None})
    follower = subprocess.Popen(
        [str(BIN), "generate", prompt, "-m", MODEL, "--json", "--stream"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        request_id = first["request_id"]
        assert json.loads(follower.stdout.readline())["event"] == "text_delta"

        running = cli(live, "requests", "status", request_id, "--json")
        assert json.loads(running.stdout)["status"] == "running"
        cancelled = cli(live, "requests", "cancel", request_id)
        assert cancelled.exit_code == 0, cancelled.output
        assert cancelled.stdout.startswith(f"request {request_id} cancelled\nEcho: w0 ")

        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 1
        assert json.loads(out.splitlines()[-1])["code"] == "cancelled"
        assert one_error_line(err).endswith("(cancelled)")
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    final = json.loads(cli(live, "requests", "status", request_id, "--json").stdout)
    assert final["status"] == "cancelled"


# -- connection settings ----------------------------------------------------------------------


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


def test_flags_beat_environment_beat_config_file(live: Live, tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    write_config(home / "pluggably" / "cli.toml", f'server = "{live.url}"\ntoken = "{BAD_TOKEN}"\n')
    nothing_set = {
        "XDG_CONFIG_HOME": str(home),
        "PLUGGABLY_SERVER_URL": None,
        "PLUGGABLY_TOKEN": None,
    }
    args = ("models", "list", "--json")

    # The file alone: its server is reached, with its (bad) token.
    from_file = cli(live, *args, **nothing_set)
    assert from_file.exit_code == 1
    assert one_error_line(from_file.stderr).endswith("(HTTP 401, unauthorized)")
    # The environment's token beats the file's; a flag beats the environment.
    assert cli(live, *args, **{**nothing_set, "PLUGGABLY_TOKEN": ADMIN_KEY}).exit_code == 0
    assert cli(live, *args, **{**nothing_set, "PLUGGABLY_API_KEY": ADMIN_KEY}).exit_code == 0
    flagged = cli(
        live, *args, "--token", BAD_TOKEN, **{**nothing_set, "PLUGGABLY_TOKEN": ADMIN_KEY}
    )
    assert flagged.exit_code == 1
    assert cli(live, *args, "--api-key", ADMIN_KEY, **nothing_set).exit_code == 0

    # Server: the environment beats the file, a flag (on the group or the command) beats both.
    nowhere = f"http://127.0.0.1:{unused_port()}"
    env_server = {**nothing_set, "PLUGGABLY_TOKEN": ADMIN_KEY, "PLUGGABLY_SERVER_URL": nowhere}
    unreachable = cli(live, *args, **env_server)
    assert unreachable.exit_code == 1
    line = one_error_line(unreachable.stderr)
    assert line.startswith(f"pluggably: cannot connect to the server at {nowhere} ")
    assert "from PLUGGABLY_SERVER_URL" in line
    assert cli(live, *args, "--server", live.url, **env_server).exit_code == 0
    assert cli(live, "models", "--server", live.url, "list", **env_server).exit_code == 0
    on_command = cli(
        live, "models", "--server", nowhere, "list", "--server", live.url, **env_server
    )
    assert on_command.exit_code == 0, on_command.output

    # PLUGGABLY_CLI_CONFIG names another file.
    other = write_config(
        tmp_path / "other.toml", f'server = "{live.url}"\napi_key = "{ADMIN_KEY}"\n'
    )
    named = cli(live, *args, **{**nothing_set, "PLUGGABLY_CLI_CONFIG": str(other)})
    assert named.exit_code == 0, named.output


def test_defaults_and_bad_settings(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    conn = resolve(Flags(), env={})
    assert (conn.server, conn.token, conn.server_from) == (DEFAULT_URL, None, "default")
    with pytest.raises(UsageError, match="not an http"):
        resolve(Flags(), env={"PLUGGABLY_URL": "localhost:8080"})  # the older name still counts

    config = tmp_path / "pluggably" / "cli.toml"
    home = {"XDG_CONFIG_HOME": str(tmp_path), "PLUGGABLY_SERVER_URL": None}
    for text, expected in (
        ("server = [", "is not valid TOML"),
        ('sever = "http://x"', "unknown key 'sever'"),
        ("server = 8080", "server must be a string"),
    ):
        write_config(config, text)
        result = cli(live, "models", "list", **home)
        assert result.exit_code == 2, result.output
        assert expected in one_error_line(result.stderr)

    missing = cli(live, "models", "list", PLUGGABLY_CLI_CONFIG=str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2
    assert "does not exist" in one_error_line(missing.stderr)
    bad_url = cli(live, "generate", "hi", "--server", "127.0.0.1:8080")
    assert bad_url.exit_code == 2
    assert one_error_line(bad_url.stderr) == (
        "pluggably: --server: '127.0.0.1:8080' is not an http:// or https:// URL"
    )
    bad_param = cli(live, "generate", "hi", "--param", "temperature")
    assert bad_param.exit_code == 2
    assert one_error_line(bad_param.stderr) == "pluggably: --param: 'temperature' is not KEY=VALUE"

    # A credential in a file others can read: used, with a warning.
    write_config(config, f'server = "{live.url}"\ntoken = "{ADMIN_KEY}"\n')
    config.chmod(0o644)
    loose = cli(live, "models", "list", "--json", PLUGGABLY_TOKEN=None, **home)
    assert loose.exit_code == 0, loose.output
    assert "others can read it; chmod 600" in loose.stderr


def test_unreachable_server_is_one_line_from_the_installed_command(live: Live) -> None:
    nowhere = f"http://127.0.0.1:{unused_port()}"
    result = cli_process(live, "generate", "hi", "-m", MODEL, PLUGGABLY_SERVER_URL=nowhere)
    assert result.returncode == 1
    assert result.stdout == ""
    assert one_error_line(result.stderr).startswith(
        f"pluggably: cannot connect to the server at {nowhere} "
    )
