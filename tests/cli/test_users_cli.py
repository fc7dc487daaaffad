"""`pluggably users list|disable|enable|limits`: what an operator does on the server
host, on the configured database and without a token (typer's runner, in process),
and what a running server makes of it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol

import pytest
from typer.testing import CliRunner, Result

from pluggably.app import create_app
from pluggably.cli import app as cli
from tests.conftest import ADMIN_KEY, PASSWORD, client_for, make_settings, new_user, running

ADMIN = {"X-API-Key": ADMIN_KEY}


def _env(tmp_path: Path, database_url: str, admin_key: bool) -> dict[str, str | None]:
    """The same data directory, key file and database as ``make_settings``."""
    return {
        "PLUGGABLY_DATA_DIR": str(tmp_path / "data"),
        "PLUGGABLY_SECRET_KEY_FILE": str(tmp_path / "config" / "secret.key"),
        "PLUGGABLY_DATABASE_URL": database_url,
        "PLUGGABLY_BUNDLED_MODEL": "false",
        "PLUGGABLY_ADMIN_KEY": ADMIN_KEY if admin_key else None,
        "PLUGGABLY_NEW_PASSWORD": PASSWORD,
        "COLUMNS": "200",
    }


class Run(Protocol):
    def __call__(self, *args: str, admin_key: bool = False) -> Result: ...


@pytest.fixture
def run(tmp_path: Path, database_url: str) -> Run:
    def invoke(*args: str, admin_key: bool = False) -> Result:
        env = _env(tmp_path, database_url, admin_key)
        return CliRunner().invoke(cli, ["users", *args], env=env)

    return invoke


def _ok(result: Result) -> list[str]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout.splitlines()


def test_list_prints_every_account_as_a_table_or_json(run: Run) -> None:
    _ok(run("create", "--username", "alice", "--email", "alice@example.com"))
    _ok(run("create", "--username", "bob", "--admin"))
    lines = _ok(run("list"))
    assert lines[0].split() == ["id", "username", "role", "disabled", "last", "login"]
    rows = [line.split() for line in lines[1:]]
    assert [row[1:] for row in rows] == [
        ["admin", "admin", "no", "never"],
        ["alice", "user", "no", "never"],
        ["bob", "admin", "no", "never"],
    ]
    assert all(row[0].startswith("usr_") for row in rows)
    listed = json.loads(run("list", "--json", "--q", "ALI").stdout)
    assert listed == [
        {
            "id": rows[1][0],
            "username": "alice",
            "email": "alice@example.com",
            "display_name": None,
            "role": "user",
            "disabled": False,
            "created_at": listed[0]["created_at"],
            "last_login_at": None,
        }
    ]


def test_disable_and_enable_by_name_or_id(run: Run) -> None:
    created = _ok(run("create", "--username", "carol"))[0]
    user_id = created.split("(")[1].rstrip(")")
    assert _ok(run("disable", "carol")) == [f"disabled carol ({user_id})"]
    assert [r.split()[3] for r in _ok(run("list"))[1:]] == ["no", "yes"]
    assert _ok(run("disable", user_id, "--enable")) == [f"enabled carol ({user_id})"]
    _ok(run("disable", "carol"))
    assert _ok(run("enable", "carol")) == [f"enabled carol ({user_id})"]
    assert [r.split()[3] for r in _ok(run("list"))[1:]] == ["no", "no"]


def test_the_guard_rails_hold_at_the_command_line(run: Run) -> None:
    _ok(run("create", "--username", "dana", "--admin"))
    # Without an admin key, dana is the only administrator anyone can sign in as.
    last = run("disable", "dana")
    assert last.exit_code == 2
    assert "'dana' is the last active administrator" in last.stderr
    # With one, the server's own admin row is an administrator too.
    assert run("disable", "dana", admin_key=True).exit_code == 0
    _ok(run("enable", "dana"))
    own = run("disable", "admin", admin_key=True)
    assert own.exit_code == 2
    assert "server's own administrator account" in own.stderr
    missing = run("disable", "nobody")
    assert (missing.exit_code, missing.stderr) == (
        2,
        "pluggably: No user with id, username or email 'nobody'.\n",
    )


def test_limits_are_shown_changed_and_cleared(run: Run) -> None:
    _ok(run("create", "--username", "erin"))
    shown = _ok(run("limits", "erin"))
    assert shown[0].startswith("limits of erin (usr_")
    assert [line.split() for line in shown[1:]] == [
        ["set", "in", "effect"],
        *([name, "-", "-"] for name in ("rpm", "tpm", "max_concurrent", "budget_usd")),
        ["budget_period", "-", "-"],
        ["models", "-", "-"],
    ]
    changed = run(
        "limits",
        "erin",
        "--rpm",
        "10",
        "--budget-usd",
        "2.5",
        "--models",
        "local:*, openai:gpt-4o*",
    )
    rows = {line.split()[0]: line.split()[1:] for line in _ok(changed)[2:]}
    assert rows["rpm"] == ["10", "10"]
    assert rows["budget_usd"] == ["2.5", "2.5"]
    assert rows["budget_period"] == ["-", "month"]
    assert rows["models"] == ["local:*,", "openai:gpt-4o*", "local:*,", "openai:gpt-4o*"]

    merged = json.loads(run("limits", "erin", "--unset", "rpm", "--tpm", "500", "--json").stdout)
    assert merged == {
        "rpm": None,
        "tpm": 500,
        "max_concurrent": None,
        "budget_usd": 2.5,
        "budget_period": None,
        "models": ["local:*", "openai:gpt-4o*"],
    }
    replaced = json.loads(
        run("limits", "erin", "--clear", "--max-concurrent", "2", "--json").stdout
    )
    assert {k: v for k, v in replaced.items() if v is not None} == {"max_concurrent": 2}
    cleared = json.loads(run("limits", "erin", "--clear", "--json").stdout)
    assert set(cleared.values()) == {None}


def test_invalid_limits_are_refused_in_one_line(run: Run) -> None:
    _ok(run("create", "--username", "finn"))
    zero = run("limits", "finn", "--rpm", "0")
    assert (zero.exit_code, zero.stderr) == (
        2,
        "pluggably: rpm: Input should be greater than or equal to 1\n",
    )
    assert run("limits", "finn", "--budget-period", "year").exit_code == 2
    assert run("limits", "finn", "--unset", "burst").exit_code == 2
    assert json.loads(run("limits", "finn", "--json").stdout)["rpm"] is None


async def test_a_running_server_sees_what_the_command_line_changed(
    tmp_path: Path, database_url: str
) -> None:
    """A disable applies to the account's next request; its limits are read again."""
    env = _env(tmp_path, database_url, admin_key=True)

    async def users(*args: str) -> Result:
        # In a thread: the command runs its own event loop.
        return await asyncio.to_thread(CliRunner().invoke, cli, ["users", *args], env=env)

    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        auth = await new_user(client, "gwen")
        made = await client.post("/v1/users/tokens", json={"name": "t"}, headers=auth)
        api = {"X-API-Key": made.json()["token"]}
        assert (await users("disable", "gwen")).exit_code == 0
        for credential in (auth, api):
            refused = await client.get("/v1/users/me", headers=credential)
            assert refused.status_code == 401
            assert "disabled" in refused.json()["detail"]["message"]
        assert (await users("enable", "gwen")).exit_code == 0
        assert (await client.get("/v1/users/me", headers=api)).status_code == 200

        assert (await users("limits", "gwen", "--rpm", "7")).exit_code == 0
        me = (await client.get("/v1/users/me", headers=api)).json()
        assert (me["limits"]["rpm"], me["effective_limits"]["rpm"]) == (7, 7)
        wider = await client.post(
            "/v1/users/tokens", json={"name": "w", "limits": {"rpm": 8}}, headers=api
        )
        assert wider.status_code == 400
        listed = await client.get("/v1/users", headers=ADMIN)
        assert [u["username"] for u in listed.json()["users"]] == ["admin", "gwen"]
