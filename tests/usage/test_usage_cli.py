"""`pluggably usage` against a real `pluggably serve` process whose openai provider is
the simulator: the table, --json and --csv (the server's own answers), --user for
administrators, and failures as one line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pluggably.cli import app
from tests.cli.test_cli import one_error_line
from tests.conftest import ADMIN_KEY, PASSWORD, unused_port
from tests.fixtures.openai_sim import OpenAISim
from tests.serving.test_serve import start_server, stop_server

pytestmark = pytest.mark.slow

MODEL = "openai:gpt-4o-mini"
COLUMNS = ["requests", "errors", "prompt tokens", "completion tokens", "cost (USD)"]
ADMIN = {"X-API-Key": ADMIN_KEY}


@dataclass
class Live:
    url: str
    home: Path  # XDG_CONFIG_HOME of every run: a user's own cli.toml must not leak in
    user_token: str  # dave's login; dave has made no request
    admin_id: str


def _user_login(url: str, username: str) -> str:
    invite = httpx.post(f"{url}/v1/users/invites", json={}, headers=ADMIN).json()["token"]
    body = {"username": username, "password": PASSWORD, "invite_token": invite}
    assert httpx.post(f"{url}/v1/users/register", json=body).status_code == 201
    login = httpx.post(f"{url}/v1/users/login", json={"username": username, "password": PASSWORD})
    return str(login.json()["token"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the module, where the admin made two requests (one failing)."""
    tmp = tmp_path_factory.mktemp("usage-cli")
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
            PLUGGABLY_PRELOAD_DEFAULTS="false",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            body = {"model": MODEL, "input": {"prompt": "hello there"}}
            assert httpx.post(f"{url}/v1/generate", json=body, headers=ADMIN).status_code == 200
            sim.fail_next(status=400)
            assert httpx.post(f"{url}/v1/generate", json=body, headers=ADMIN).status_code == 400
            admin_id = httpx.get(f"{url}/v1/users/me", headers=ADMIN).json()["id"]
            yield Live(url, home, _user_login(url, "dave"), admin_id)
        finally:
            stop_server(proc, log)


def cli(live: Live, *args: str, token: str = ADMIN_KEY) -> Result:
    env = {
        "COLUMNS": "200",  # rich tables never wrap an id
        "XDG_CONFIG_HOME": str(live.home),
        "PLUGGABLY_SERVER_URL": live.url,
        "PLUGGABLY_TOKEN": token,
    }
    return CliRunner().invoke(app, ["usage", *args], env=env)


def server_answer(live: Live, path: str, **params: str) -> httpx.Response:
    answer = httpx.get(f"{live.url}{path}", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer


def test_json_and_csv_are_the_servers_answers(live: Live) -> None:
    printed = cli(live, "--json", "--group-by", "model")
    assert printed.exit_code == 0, printed.output
    report = json.loads(printed.stdout)
    expected = server_answer(live, "/v1/usage", group_by="model").json()
    assert (report["rows"], report["totals"]) == (expected["rows"], expected["totals"])
    assert report["totals"]["requests"] == 2
    assert report["totals"]["errors"] == 1

    today = datetime.now(UTC).date().isoformat()
    window = ("--from", today, "--to", today)
    csv_text = cli(live, "--csv", "-g", "provider", *window)
    assert csv_text.exit_code == 0, csv_text.output
    params = {"group_by": "provider", "from": today, "to": today}
    served = server_answer(live, "/v1/usage.csv", **params).text
    # click's test runner reads CRLF as LF; the server's CSV (RFC 4180) has CRLF.
    assert csv_text.stdout == served.replace("\r\n", "\n")
    assert served.splitlines()[-1].startswith("total,,2,1,")


def cells(line: str) -> list[str]:
    """The cells of one line of a rich table (its header's rules are heavy)."""
    return [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]


def numbers(counts: dict[str, Any]) -> list[str]:
    cost = f"{counts['cost_usd']:.8f}".rstrip("0").rstrip(".")
    names = ("requests", "errors", "prompt_tokens", "completion_tokens")
    return [*(str(counts[name]) for name in names), cost]


def test_the_table_has_a_row_per_key_and_the_totals(live: Live) -> None:
    shown = cli(live, "-g", "model")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].strip().startswith(f"usage of {live.admin_id} from ")
    assert lines[0].strip().endswith(" UTC")
    assert cells(lines[2]) == ["model", *COLUMNS]
    report = server_answer(live, "/v1/usage", group_by="model").json()
    rows = [cells(line) for line in lines[4:-3]]
    # The failure names no model: '-'.
    assert [row[0] for row in rows] == [MODEL, "-"]
    assert rows == [[row["key"] or "-", *numbers(row)] for row in report["rows"]]
    assert cells(lines[-2]) == ["total", *numbers(report["totals"])]

    users = cli(live, "-g", "user").stdout.splitlines()
    assert cells(users[2]) == ["user", "username", *COLUMNS]
    assert cells(users[4])[:3] == [live.admin_id, "admin", "2"]


def test_administrators_pick_a_user_and_others_may_not(live: Live) -> None:
    everyone = cli(live, "--user", "*", "-g", "user", "--json")
    assert everyone.exit_code == 0, everyone.output
    keys = {row["key"]: row["requests"] for row in json.loads(everyone.stdout)["rows"]}
    assert keys == {live.admin_id: 2}

    empty = cli(live, token=live.user_token)
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.startswith("no requests from ")
    denied = cli(live, "--user", live.admin_id, token=live.user_token)
    assert denied.exit_code == 1
    assert denied.stdout == ""
    line = one_error_line(denied.stderr)
    assert line.endswith("(HTTP 403, forbidden)")
    assert "administrators" in line


def test_bad_options_are_one_line(live: Live) -> None:
    backwards = cli(live, "--from", "2025-02-01", "--to", "2025-01-01")
    assert backwards.exit_code == 1
    assert one_error_line(backwards.stderr).endswith("(HTTP 422, validation_error)")
    no_offset = cli(live, "--from", "2025-02-01T10:00")
    assert no_offset.exit_code == 1
    assert "offset" in one_error_line(no_offset.stderr)
    both = cli(live, "--csv", "--json")
    assert both.exit_code == 2
    assert one_error_line(both.stderr) == "pluggably: --csv and --json: choose one"
    unknown = cli(live, "--group-by", "week")
    assert unknown.exit_code == 2
