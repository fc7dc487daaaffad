"""Issue #15: what one user may store in sessions, and what one read returns.

- A per-user bound on stored session content: a turn that would go over it is
  refused with 409 ``session_storage_full`` and stores nothing; other users are
  unaffected; concurrent turns cannot slip past it together.
- A per-request bound on the turns one session request stores (413).
- ``GET /v1/sessions/{id}`` without ``limit`` answers a default page (the newest
  messages, ``next_before`` for the rest), and every page stops at a byte budget.
- SQLite gives the space of purged sessions back to the filesystem, and a database
  made before incremental auto-vacuum is switched to it once, by ``pluggably serve``
  or ``pluggably db upgrade`` (never by another command or engine), when the disk
  has room for the VACUUM."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine
from structlog.testing import capture_logs

from pluggably.app import create_app
from pluggably.client import AsyncClient, Client
from pluggably.db import DATABASE_DOWN, Database, migrate, utcnow
from pluggably.db.auto_vacuum import enable_incremental_vacuum
from pluggably.db.reclaim import SpaceReclaimer
from pluggably.generation.schemas import GenerateRequest, GenerateResponse
from pluggably.periodic import every
from pluggably.sessions.models import ChatSession
from pluggably.users.models import User
from tests.conftest import (
    ADMIN_KEY,
    assert_envelope,
    client_for,
    make_settings,
    new_user,
    running,
)
from tests.fixtures.openai_sim import OpenAISim
from tests.fixtures.schema_rollback import undo_after_0010
from tests.serving.test_serve import _env as cli_env
from tests.serving.test_serve import _run as run_cli
from tests.serving.test_serve import start_server, stop_server

ADMIN = {"X-API-Key": ADMIN_KEY}
MODEL = "openai:gpt-4o-mini"
TURN = "x" * 15_000  # one 15 KB turn, as in the report


def _app(tmp_path: Path, database_url: str, sim: OpenAISim, **settings: Any) -> FastAPI:
    sim.set_reply("gpt-4o-mini", "ok")
    return create_app(
        make_settings(
            tmp_path,
            database_url,
            providers={"openai": {"base_url": sim.base_url, "api_key": "sk-server-key-0001"}},
            server_keys_allowed=["*"],
            **settings,
        )
    )


async def _session(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    response = await client.post("/v1/sessions", headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _turns(
    client: httpx.AsyncClient, auth: dict[str, str], sid: str, *contents: str
) -> httpx.Response:
    """One request storing ``contents`` as user turns (the model answers "ok")."""
    messages = [{"role": "user", "content": c} for c in contents]
    body = {"model": MODEL, "input": {"messages": messages}}
    return await client.post(f"/v1/sessions/{sid}/generate", json=body, headers=auth)


async def _all_messages(
    client: httpx.AsyncClient, auth: dict[str, str], sid: str
) -> list[dict[str, Any]]:
    """Every message of the session, oldest first, paging back with ``next_before``."""
    messages: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    while True:
        response = await client.get(f"/v1/sessions/{sid}", params=params, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        messages[:0] = page["messages"]
        if page["next_before"] is None:
            return messages
        params = {"before": page["next_before"]}


async def _stored_text(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    """Bytes of message text the user has in all their sessions."""
    listing = (await client.get("/v1/sessions", params={"limit": 200}, headers=auth)).json()
    total = 0
    for summary in listing["sessions"]:
        for message in await _all_messages(client, auth, summary["id"]):
            total += len(message["content"].encode())
    return total


# the per-user bound
async def test_a_user_over_the_storage_bound_is_refused_and_stores_nothing(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    bound = 200_000
    app = _app(tmp_path, database_url, openai_sim, session_storage_bytes_per_user=bound)
    async with running(app), client_for(app) as client:
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        sid = await _session(client, alice)
        for _ in range(3):  # 3 x 60 KB fit in 200 KB
            response = await _turns(client, alice, sid, *[TURN] * 4)
            assert response.status_code == 200, response.text
        before = await _all_messages(client, alice, sid)

        refused = await _turns(client, alice, sid, *[TURN] * 4)
        detail = assert_envelope(refused, 409, "session_storage_full")
        assert "delete" in detail["message"].lower()
        assert await _all_messages(client, alice, sid) == before  # nothing half-stored
        # Not in another session of hers either.
        other = await _session(client, alice)
        assert_envelope(await _turns(client, alice, other, TURN, TURN), 409, "session_storage_full")
        assert (await client.get(f"/v1/sessions/{other}", headers=alice)).json()["messages"] == []
        assert await _stored_text(client, alice) <= bound

        # A turn that fits is taken, and its answer kept even past the bound; after
        # that, neither a new turn nor another answer (regenerate) is.
        answer = "a" * 20_000
        openai_sim.set_reply("gpt-4o-mini", answer)
        assert (await _turns(client, alice, sid, TURN)).status_code == 200
        stored = await _stored_text(client, alice)
        assert bound < stored <= bound + len(answer)
        assert_envelope(await _turns(client, alice, sid, "hi"), 409, "session_storage_full")
        again = await client.post(f"/v1/sessions/{sid}/regenerate", json={}, headers=alice)
        assert_envelope(again, 409, "session_storage_full")
        assert await _stored_text(client, alice) == stored
        openai_sim.set_reply("gpt-4o-mini", "ok")

        # Bob's own bound is untouched by Alice's.
        bob_sid = await _session(client, bob)
        for _ in range(3):
            response = await _turns(client, bob, bob_sid, *[TURN] * 4)
            assert response.status_code == 200, response.text

        # Purging a session gives its room back.
        purged = await client.delete(f"/v1/sessions/{sid}", params={"purge": "true"}, headers=alice)
        assert purged.status_code == 200, purged.text
        response = await _turns(client, alice, other, *[TURN] * 4)
        assert response.status_code == 200, response.text


async def test_system_prompts_count_towards_the_bound(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim, session_storage_bytes_per_user=200_000)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        prompt = "p" * 60_000
        for _ in range(3):
            created = await client.post(
                "/v1/sessions", json={"system_prompt": prompt}, headers=alice
            )
            assert created.status_code == 201, created.text
        refused = await client.post("/v1/sessions", json={"system_prompt": prompt}, headers=alice)
        assert_envelope(refused, 409, "session_storage_full")
        listing = (await client.get("/v1/sessions", headers=alice)).json()
        assert len(listing["sessions"]) == 3


async def test_concurrent_turns_do_not_pass_the_bound_together(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    bound = 200_000
    app = _app(tmp_path, database_url, openai_sim, session_storage_bytes_per_user=bound)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sids = [await _session(client, alice) for _ in range(8)]
        answers = await asyncio.gather(*(_turns(client, alice, s, *[TURN] * 4) for s in sids))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * 3 + [409] * 5, [r.text for r in answers]
        assert await _stored_text(client, alice) <= bound


async def test_one_request_may_store_only_so_much(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim, session_request_max_bytes=100_000)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sid = await _session(client, alice)
        refused = await _turns(client, alice, sid, *[TURN] * 10)
        assert_envelope(refused, 413, "payload_too_large")
        detail = (await client.get(f"/v1/sessions/{sid}", headers=alice)).json()
        assert (detail["messages"], detail["message_count"]) == ([], 0)
        accepted = await _turns(client, alice, sid, *[TURN] * 6)
        assert accepted.status_code == 200, accepted.text


async def test_a_turn_sums_the_owners_storage_from_the_covering_index_alone(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """The per-turn SUM over the owner's sessions (tens of thousands for some users)
    reads ``ix_sessions_user_bytes`` only: an index-only scan, never the session rows.
    Checked on the very statement a turn runs, with the plan of the database."""
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice, _ = await new_user(client, "alice"), await new_user(client, "bob")
        sid = await _session(client, alice)
        db = app.state.container.db
        async with db.session() as s:
            owners = dict((await s.execute(select(User.username, User.id))).all())
            now = utcnow()
            rows = [
                {
                    "id": f"ses_bulk_{name}_{i:05d}",
                    "user_id": owners[name],
                    "title": "t",
                    "title_explicit": True,
                    "status": "active",
                    "system_prompt": "p" * 200,
                    "message_count": 0,
                    "next_seq": 0,
                    "created_at": now,
                    "last_used_at": now - timedelta(seconds=i),
                    "message_bytes": i,
                    "own_bytes": 712,
                }
                for name in ("alice", "bob")
                for i in range(3000)
            ]
            await s.execute(insert(ChatSession), rows)
        analyze = "VACUUM ANALYZE sessions" if db.dialect == "postgresql" else "ANALYZE"
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(analyze)

        sums: list[tuple[str, Any]] = []

        def keep(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "sum(" in statement.lower():
                sums.append((statement, params))

        event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
        try:
            assert (await _turns(client, alice, sid, "hello")).status_code == 200
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
        assert len(sums) == 1, sums
        statement, params = sums[0]
        explain = "EXPLAIN " if db.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
        async with db.engine.connect() as conn:
            plan = " | ".join(
                str(row[-1]) for row in await conn.exec_driver_sql(explain + statement, params)
            )
    if db.dialect == "postgresql":
        assert "Index Only Scan using ix_sessions_user_bytes" in plan, plan
    else:
        assert "USING COVERING INDEX ix_sessions_user_bytes" in plan, plan


# what one read returns
async def test_reading_a_session_without_limit_answers_the_newest_page(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sid = await _session(client, alice)
        history = [f"m{i}" for i in range(299)]
        assert (await _turns(client, alice, sid, *history)).status_code == 200

        page = (await client.get(f"/v1/sessions/{sid}", headers=alice)).json()
        assert page["message_count"] == 300
        assert [m["content"] for m in page["messages"]] == [*history[-99:], "ok"]
        assert page["next_before"] == page["messages"][0]["id"]
        everything = await _all_messages(client, alice, sid)
        assert [m["content"] for m in everything] == [*history, "ok"]
        # An explicit limit still reads up to 1000 at once.
        wide = (await client.get(f"/v1/sessions/{sid}?limit=1000", headers=alice)).json()
        assert wide["messages"] == everything
        assert wide["next_before"] is None


async def test_a_page_stops_at_its_byte_budget(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim, session_page_max_bytes=64 * 1024)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sid = await _session(client, alice)
        big = [f"{i:03d}" + "y" * 30_000 for i in range(10)]
        assert (await _turns(client, alice, sid, *big)).status_code == 200

        page = await client.get(f"/v1/sessions/{sid}?limit=1000", headers=alice)
        assert len(page.content) < 100_000
        body = page.json()
        assert [m["content"][:3] for m in body["messages"]] == ["008", "009", "ok"]
        assert body["next_before"] == body["messages"][0]["id"]
        assert [m["content"] for m in await _all_messages(client, alice, sid)] == [*big, "ok"]

        # A single message over the budget still comes, alone.
        huge = "z" * 100_000
        assert (await _turns(client, alice, sid, huge)).status_code == 200
        newest = (await client.get(f"/v1/sessions/{sid}", headers=alice)).json()
        assert [m["content"] for m in newest["messages"]] == ["ok"]
        older = await client.get(
            f"/v1/sessions/{sid}", params={"before": newest["next_before"]}, headers=alice
        )
        assert [m["content"] for m in older.json()["messages"]] == [huge]


# our own client reads the whole history
LONG = [f"m{i:03d} " + "h" * 1000 for i in range(150)]  # 150 turns, ~150 KB


async def test_the_client_reads_every_message_of_a_long_session(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """Past the default page (100 messages) and the page's byte budget: ``messages()``
    follows ``next_before`` to the first message; ``limit``/``before`` read one page."""
    app = _app(tmp_path, database_url, openai_sim, session_page_max_bytes=64 * 1024)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with AsyncClient("http://testserver", transport=transport, api_key=ADMIN_KEY) as pc:
            chat = await pc.session(title="Long")
            answer = await chat.generate(GenerateRequest.model_validate(_long_turns()))
            assert isinstance(answer, GenerateResponse)
            expected = [*LONG, "ok"]
            assert [m.content for m in await chat.messages()] == expected
            assert [m.content for m in await pc.sessions.messages(chat.id)] == expected

            newest = await chat.messages(limit=10)
            assert [m.content for m in newest] == expected[-10:]
            older = await pc.sessions.messages(chat.id, before=newest[0].id, limit=5)
            assert [m.content for m in older] == expected[-15:-10]
            page = await pc.sessions.get(chat.id)  # one page, with the way back
            assert page.next_before == page.messages[0].id
            assert len(page.messages) < len(expected)


@pytest.mark.slow
def test_the_sync_client_reads_every_message_of_a_long_session(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "ok")
    proc, log_path = start_server(
        tmp_path,
        free_port,
        PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=openai_sim.base_url,
        PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
        PLUGGABLY_SERVER_KEYS_ALLOWED='["*"]',
        PLUGGABLY_SESSION_PAGE_MAX_BYTES=str(64 * 1024),
    )
    try:
        with Client(f"http://127.0.0.1:{free_port}", api_key=ADMIN_KEY) as pc:
            chat = pc.session()
            assert isinstance(
                chat.generate(GenerateRequest.model_validate(_long_turns())), GenerateResponse
            )
            expected = [*LONG, "ok"]
            assert [m.content for m in chat.messages()] == expected
            assert [m.content for m in pc.sessions.messages(chat.id)] == expected
            assert [m.content for m in chat.messages(limit=3)] == expected[-3:]
    finally:
        stop_server(proc, log_path)


def _long_turns() -> dict[str, Any]:
    return {"model": MODEL, "input": {"messages": [{"role": "user", "content": c} for c in LONG]}}


# space given back on SQLite
def _pages(path: Path) -> tuple[int, int]:
    """(page_count, auto_vacuum mode) of an SQLite file, read beside the app."""
    with closing(sqlite3.connect(path)) as conn:
        return (
            int(conn.execute("PRAGMA page_count").fetchone()[0]),
            int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]),
        )


def _file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@pytest.fixture
def sqlite_file(tmp_path: Path, database_url: str) -> Path:
    if not database_url.startswith("sqlite"):
        pytest.skip("about the SQLite file")
    return tmp_path / "pluggably.db"


async def test_purging_sessions_gives_the_space_back_to_the_filesystem(
    tmp_path: Path, database_url: str, sqlite_file: Path, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sids = [await _session(client, alice) for _ in range(2)]
        for sid in sids:
            for _ in range(2):
                response = await _turns(client, alice, sid, *["w" * 10_000] * 300)
                assert response.status_code == 200, response.text
        full_pages, mode = _pages(sqlite_file)
        assert mode == 2  # incremental
        full_bytes = _file_bytes(sqlite_file)
        assert full_bytes > 12_000_000

        for sid in sids:
            purged = await client.delete(
                f"/v1/sessions/{sid}", params={"purge": "true"}, headers=alice
            )
            assert purged.status_code == 200, purged.text
        pages, _ = _pages(sqlite_file)
        assert pages < full_pages // 4, (pages, full_pages)
    # Closed: the WAL is checkpointed into the (now shorter) file.
    assert _file_bytes(sqlite_file) < full_bytes // 4


async def test_resetting_a_session_gives_the_space_back(
    tmp_path: Path, database_url: str, sqlite_file: Path, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sid = await _session(client, alice)
        for _ in range(2):
            response = await _turns(client, alice, sid, *["w" * 10_000] * 300)
            assert response.status_code == 200, response.text
        full_pages, _ = _pages(sqlite_file)
        reset = await client.post(f"/v1/sessions/{sid}/reset", headers=alice)
        assert reset.status_code == 200, reset.text
        pages, _ = _pages(sqlite_file)
        assert pages < full_pages // 4, (pages, full_pages)


async def test_the_retention_pass_gives_the_space_back(
    tmp_path: Path, database_url: str, sqlite_file: Path, openai_sim: OpenAISim
) -> None:
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sid = await _session(client, alice)
        for _ in range(2):
            response = await _turns(client, alice, sid, *["w" * 10_000] * 300)
            assert response.status_code == 200, response.text
        assert (await client.delete(f"/v1/sessions/{sid}", headers=alice)).status_code == 200
        full_pages, _ = _pages(sqlite_file)
        container = app.state.container
        async with container.db.session() as s:
            await s.execute(update(ChatSession).values(closed_at=utcnow() - timedelta(days=40)))
        # The pass the lifespan runs (its first one at once), as configured with
        # session_retention_closed_days=30.
        retain = partial(container.sessions.retain, container.db, closed_days=30, idle_days=None)
        loop = asyncio.create_task(every(3600, "session_retention", retain))
        try:
            async with asyncio.timeout(10):
                while _pages(sqlite_file)[0] >= full_pages // 4:
                    await asyncio.sleep(0.05)
        finally:
            loop.cancel()
        assert (await client.get(f"/v1/sessions/{sid}", headers=alice)).status_code == 404


def _older_sqlite_file(tmp_path: Path) -> Path:
    """A database made by an earlier release (tables first, no auto-vacuum), where
    ``pluggably`` run with ``_env(tmp_path)`` finds it."""
    path = tmp_path / "data" / "pluggably.db"
    path.parent.mkdir(parents=True)

    async def make() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        await migrate.upgrade(engine, "0008")
        await engine.dispose()

    asyncio.run(make())
    assert _pages(path)[1] == 0
    return path


@pytest.mark.slow
def test_db_upgrade_switches_an_older_sqlite_file_to_incremental_vacuum_once(
    tmp_path: Path,
) -> None:
    path = _older_sqlite_file(tmp_path)
    first = run_cli(["db", "upgrade"], cli_env(tmp_path))
    assert first.returncode == 0, first.stderr
    assert _pages(path)[1] == 2
    lines = [json.loads(line) for line in first.stderr.splitlines() if line.startswith("{")]
    done = [line for line in lines if line["event"] == "sqlite_auto_vacuum_enabled"]
    assert len(done) == 1, first.stderr
    assert isinstance(done[0]["seconds"], float)
    again = run_cli(["db", "upgrade"], cli_env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "sqlite_auto_vacuum" not in again.stderr + again.stdout


@pytest.mark.slow
def test_serve_switches_an_older_sqlite_file_before_taking_requests(
    tmp_path: Path, free_port: int
) -> None:
    path = _older_sqlite_file(tmp_path)
    proc, log_path = start_server(tmp_path, free_port)
    assert _pages(path)[1] == 2
    assert "sqlite_auto_vacuum_enabled" in stop_server(proc, log_path)


@pytest.mark.slow
def test_other_commands_and_engines_never_vacuum_the_file(tmp_path: Path) -> None:
    """A CLI command run beside a server, or any engine opened on the file, must not
    rewrite it: a full VACUUM would hold the server's writes for the whole rewrite."""
    path = _older_sqlite_file(tmp_path)
    env = {**cli_env(tmp_path), "PLUGGABLY_NEW_PASSWORD": "a long enough password"}
    created = run_cli(["users", "create", "--username", "carol"], env)
    assert created.returncode == 0, created.stderr
    assert _pages(path)[1] == 0

    async def use_directly() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.session() as s:
                assert await s.scalar(select(User.username).where(User.username == "carol"))
        finally:
            await db.dispose()

    asyncio.run(use_directly())
    assert _pages(path)[1] == 0


async def test_the_switch_is_skipped_with_a_warning_when_the_disk_has_no_room(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_async_engine(url)
    await migrate.upgrade(engine, "0008")
    await engine.dispose()
    with capture_logs() as logs:
        assert not await enable_incremental_vacuum(url, margin_bytes=2**60)
    assert _pages(path)[1] == 0
    skipped = [e for e in logs if e["event"] == "sqlite_auto_vacuum_skipped"]
    assert len(skipped) == 1, logs
    assert skipped[0]["log_level"] == "warning"
    assert skipped[0]["needed_bytes"] > skipped[0]["free_bytes"]
    # With room, the same call switches it.
    assert await enable_incremental_vacuum(url)
    assert _pages(path)[1] == 2


async def test_rows_stored_before_the_sizes_were_kept_are_measured_on_upgrade(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """Migration 0009 measures what is already stored exactly as the service counts
    new rows: the sizes kept at run time, dropped and measured again, are the same."""
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        created = await client.post(
            "/v1/sessions", json={"system_prompt": "Sé bref ✓"}, headers=alice
        )
        sid = created.json()["id"]
        body = {"model": MODEL, "input": {"prompt": "héllo ✓"}, "state_tokens": {"k": "é"}}
        assert (
            await client.post(f"/v1/sessions/{sid}/generate", json=body, headers=alice)
        ).status_code == 200
        await _session(client, alice)  # an empty one
    kept = await _sizes(database_url)
    assert len(kept[0]) == 2
    assert [size > 128 for _, size in kept[1]] == [True, True]

    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP INDEX ix_messages_session_seq_size")
        await conn.exec_driver_sql("DROP INDEX ix_sessions_user_bytes")
        for table, column in (
            ("messages", "size_bytes"),
            ("sessions", "message_bytes"),
            ("sessions", "own_bytes"),
            # 0010's columns: the upgrade from 0008 adds them again.
            ("messages", "tool_calls"),
            ("messages", "tool_call_id"),
            ("messages", "reasoning"),
            ("messages", "reasoning_signature"),
        ):
            await conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        await undo_after_0010(conn)  # 0011 and later: made again
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0008'")
    await engine.dispose()

    async with running(_app(tmp_path, database_url, openai_sim)):
        pass
    assert await _sizes(database_url) == kept


async def _sizes(database_url: str) -> tuple[list[Any], list[Any]]:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        sessions = await conn.exec_driver_sql(
            "SELECT id, message_bytes, own_bytes FROM sessions ORDER BY id"
        )
        messages = await conn.exec_driver_sql("SELECT id, size_bytes FROM messages ORDER BY id")
        result = ([tuple(r) for r in sessions], [tuple(r) for r in messages])
    await engine.dispose()
    return result


async def test_a_file_without_auto_vacuum_keeps_its_free_pages_and_the_reclaim_ends(
    tmp_path: Path,
) -> None:
    """A file that could not be switched (no space for the VACUUM): reclaiming does
    nothing, and returns."""
    path = tmp_path / "plain.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("a" * 50_000,)] * 100)
        conn.execute("DELETE FROM t")
        conn.commit()
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with asyncio.timeout(10):
            assert await SpaceReclaimer(engine).run() == 0
    finally:
        await engine.dispose()
    assert _pages(path)[1] == 0


# lock order (PostgreSQL): the owner's row, then the session's
async def test_editing_a_session_while_generating_in_it_never_deadlocks(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    """A PATCH that renames the session and grows its system prompt, racing a turn in
    the same session: both take the owner's row lock before the session's row, so they
    queue behind each other instead of deadlocking (which answered 500)."""
    app = _app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        alice = await new_user(client, "alice")
        sid = await _session(client, alice)
        rounds = 40
        for i in range(rounds):
            body = {"title": f"t{i}", "system_prompt": "p" * (i + 1)}
            edited, turned = await asyncio.gather(
                client.patch(f"/v1/sessions/{sid}", json=body, headers=alice),
                _turns(client, alice, sid, f"turn {i}"),
            )
            assert (edited.status_code, turned.status_code) == (200, 200), (
                i,
                edited.text,
                turned.text,
            )
        detail = (await client.get(f"/v1/sessions/{sid}", headers=alice)).json()
        assert detail["message_count"] == 2 * rounds
        assert detail["title"] == f"t{rounds - 1}"


async def test_a_postgresql_deadlock_is_a_database_busy_error(database_url: str) -> None:
    """Should two transactions still deadlock (or fail to serialize), the loser is one
    of DATABASE_DOWN (503 database_unavailable, try again), not an unhandled error."""
    if not database_url.startswith("postgresql"):
        pytest.skip("about PostgreSQL")
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE pair (id INT PRIMARY KEY, v INT)")
            await conn.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
        async with db.engine.connect() as one, db.engine.connect() as two:
            await one.begin()
            await two.begin()
            touch = "UPDATE pair SET v = v + 1 WHERE id = {}"
            await one.exec_driver_sql(touch.format(1))
            await two.exec_driver_sql(touch.format(2))
            outcomes = await asyncio.gather(
                one.exec_driver_sql(touch.format(2)),
                two.exec_driver_sql(touch.format(1)),
                return_exceptions=True,
            )
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failed) == 1, outcomes
        assert isinstance(failed[0], DATABASE_DOWN), repr(failed[0])
        assert getattr(failed[0].orig, "sqlstate", None) == "40P01"
    finally:
        await db.dispose()
