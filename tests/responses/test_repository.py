"""The chain of stored responses: walked by owner in one query, oldest first,
bounded, and carrying on past a deleted response's gap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from pluggably.db import Database, migrate
from pluggably.errors import InvalidParameter, NotFound
from pluggably.responses import repository
from pluggably.responses.models import StoredResponse
from pluggably.responses.service import ResponseStore
from pluggably.users.models import User


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await migrate.upgrade(database.engine)
    now = datetime.now(UTC)
    async with database.session() as session:
        for name in ("ann", "bob"):
            session.add(
                User(
                    id=f"usr_{name}",
                    username=name,
                    role="user",
                    preferences={},
                    created_at=now,
                    updated_at=now,
                )
            )
    yield database
    await database.dispose()


async def _store(db: Database, user: str, ids: list[str], previous: str | None = None) -> None:
    """A chain of responses, each continuing the one before."""
    store = ResponseStore(db)
    for response_id in ids:
        body = {"id": response_id, "output": [{"id": f"out_{response_id}"}]}
        await store.save(user, body, previous, [{"id": f"in_{response_id}"}])
        previous = response_id


async def test_the_chain_is_walked_oldest_first(db: Database) -> None:
    await _store(db, "usr_ann", ["resp_1", "resp_2", "resp_3"])
    async with db.session() as session:
        rows = await repository.chain(session, "usr_ann", "resp_3", 10)
        assert [r.id for r in rows] == ["resp_1", "resp_2", "resp_3"]
        assert [r.id for r in await repository.chain(session, "usr_ann", "resp_3", 2)] == [
            "resp_2",
            "resp_3",
        ]
    history = await ResponseStore(db).history("usr_ann", "resp_2")
    assert [item["id"] for item in history] == [
        "in_resp_1",
        "out_resp_1",
        "in_resp_2",
        "out_resp_2",
    ]


async def test_another_users_chain_is_not_found_nor_walked_into(db: Database) -> None:
    await _store(db, "usr_ann", ["resp_a"])
    await _store(db, "usr_bob", ["resp_b"], previous="resp_a")  # names ann's response
    async with db.session() as session:
        assert await repository.chain(session, "usr_bob", "resp_a", 10) == []
        assert [r.id for r in await repository.chain(session, "usr_bob", "resp_b", 10)] == [
            "resp_b"
        ]
        with pytest.raises(NotFound):
            await ResponseStore(db).get(session, "usr_bob", "resp_a")
    with pytest.raises(InvalidParameter) as refused:
        await ResponseStore(db).history("usr_bob", "resp_a")
    assert refused.value.message == "Previous response with id 'resp_a' not found."


async def test_a_deleted_response_leaves_its_successors_with_the_rest(db: Database) -> None:
    await _store(db, "usr_ann", ["resp_1", "resp_2", "resp_3"])
    async with db.session() as session:
        await ResponseStore(db).delete(session, "usr_ann", "resp_2")
    async with db.session() as session:
        assert [r.id for r in await repository.chain(session, "usr_ann", "resp_3", 10)] == [
            "resp_3"
        ]
        items = await ResponseStore(db).input_items(session, "usr_ann", "resp_3")
        assert [i["id"] for i in items] == ["in_resp_3"]
        assert await session.get(StoredResponse, "resp_1") is not None


async def test_a_chain_longer_than_the_bound_is_refused(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pluggably.responses.service.MAX_CHAIN", 2)
    await _store(db, "usr_ann", ["resp_1", "resp_2", "resp_3"])
    assert len(await ResponseStore(db).history("usr_ann", "resp_2")) == 4
    with pytest.raises(InvalidParameter) as refused:
        await ResponseStore(db).history("usr_ann", "resp_3")
    assert "more than 2 responses" in refused.value.message


async def test_a_failure_to_store_is_logged_not_raised(db: Database) -> None:
    await _store(db, "usr_ann", ["resp_1"])
    await _store(db, "usr_ann", ["resp_1"])  # the same id again: the insert fails
    async with db.session() as session:
        assert [r.id for r in await repository.chain(session, "usr_ann", "resp_1", 10)] == [
            "resp_1"
        ]


async def test_a_conversation_larger_than_the_bound_is_refused_before_it_is_loaded(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each response may be as large as a request body; a chain of them is held to
    what one request may carry, measured in the database, not by loading it."""
    store = ResponseStore(db)
    previous = None
    for n in range(3):
        body = {"id": f"resp_{n}", "output": [{"id": f"out_{n}", "text": "x" * 1000}]}
        await store.save("usr_ann", body, previous, [{"id": f"in_{n}", "text": "y" * 1000}])
        previous = f"resp_{n}"
    monkeypatch.setattr("pluggably.responses.service.MAX_HISTORY_CHARS", 5000)
    assert len(await store.history("usr_ann", "resp_1")) == 4  # about 4000 characters
    loaded: list[str] = []
    chain = repository.chain

    async def spy(*args: object, **kwargs: object) -> list[StoredResponse]:
        loaded.append("chain")
        return await chain(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "chain", spy)
    with pytest.raises(InvalidParameter) as refused:
        await store.history("usr_ann", "resp_2")  # about 6000
    assert refused.value.message.startswith("This conversation holds more than")
    assert refused.value.details[0]["loc"] == ["body", "previous_response_id"]
    assert loaded == []


async def test_responses_older_than_the_retention_are_purged_in_batches(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from pluggably.responses import service

    monkeypatch.setattr(service, "EXPIRE_BATCH", 2)  # several transactions
    await _store(db, "usr_ann", [f"resp_old{n}" for n in range(5)])
    await _store(db, "usr_bob", ["resp_new"])
    async with db.session() as session:
        await session.execute(
            update(StoredResponse)
            .where(StoredResponse.id.startswith("resp_old"))
            .values(created_at=datetime.now(UTC) - timedelta(days=31))
        )
    store = ResponseStore(db)
    assert await store.expire(30) == 5
    assert await store.expire(30) == 0
    async with db.session() as session:
        assert await repository.get(session, "usr_bob", "resp_new") is not None
        assert await repository.get(session, "usr_ann", "resp_old0") is None
