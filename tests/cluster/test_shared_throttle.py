"""Login throttling holds across replicas: failures counted on one replica refuse the
same guesses on another, and the owner's success on one is remembered by all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.auth.throttle import LoginThrottle
from pluggably.cluster.throttle_share import decode, encode
from tests.conftest import (
    PASSWORD,
    assert_envelope,
    client_for,
    make_settings,
    register,
    running,
)

WRONG = "not-the-password-at-all"


def test_a_throttle_applying_anothers_facts_refuses_alike() -> None:
    """The facts one throttle shares carry digests only, and another throttle that
    applies them counts exactly as the first did."""
    a, b = (LoginThrottle(3, 20, 900, slowdown_after=10, slowdown_max_s=3) for _ in "ab")
    shared: list[list[object]] = []
    a.share = shared.append
    for _ in range(3):
        asyncio.run(a.attempt("victim", "10.6.6.6"))
    assert all(isinstance(part, (bytes, float, str)) for fact in shared for part in fact)
    assert not any(b"victim" in part for fact in shared for part in fact if isinstance(part, bytes))
    for fact in shared:
        b.apply(fact)
    with pytest.raises(Exception, match="Too many failed attempts"):
        asyncio.run(b.attempt("victim", "10.6.6.6"))


@pytest.fixture
async def two_replicas(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("one process on SQLite: there is no other replica")
    settings = make_settings(tmp_path, database_url, login_max_failures=3)
    other = settings.model_copy(update={"data_dir": tmp_path / "b"})
    async with running(create_app(settings)) as a, running(create_app(other)) as b:
        yield a, b


async def _login(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await client.post("/v1/users/login", json={"username": name, "password": password})


async def test_failures_on_one_replica_refuse_the_same_guesses_on_another(
    two_replicas: tuple[FastAPI, FastAPI],
) -> None:
    a, b = two_replicas
    async with (
        client_for(a, client_host="10.0.0.1") as owner_a,
        client_for(a, client_host="10.6.6.6") as attacker_a,
        client_for(b, client_host="10.6.6.6") as attacker_b,
        client_for(b, client_host="10.0.0.1") as owner_b,
    ):
        assert (await register(owner_a, "victim")).status_code == 201
        for _ in range(3):
            assert_envelope(await _login(attacker_a, "victim", WRONG), 401, "unauthorized")

        # The facts travel through PostgreSQL in about a millisecond. B, which saw no
        # failure itself, refuses the first guess from that address, even with the
        # right password.
        await asyncio.sleep(0.3)
        assert_envelope(await _login(attacker_b, "victim", WRONG), 429, "rate_limited")
        assert_envelope(await _login(attacker_b, "victim", PASSWORD), 429, "rate_limited")
        # The owner, from their own address, still gets in through either replica.
        assert (await _login(owner_b, "victim", PASSWORD)).status_code == 200
        assert (await _login(owner_a, "victim", PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        ["x", "00" * 16],
        ["c"],
        ["c", "zz" * 16],
        ["c", "00" * 8],
        ["a", "00" * 16, "00" * 16, "00" * 16, -1.0],
        ["s", "00" * 16, "00" * 16, "00" * 16, "", ["00" * 16] * 17],
    ],
)
def test_a_malformed_fact_from_the_bus_is_refused(raw: object) -> None:
    with pytest.raises(ValueError, match=r"throttle fact|digest|spacing|keys|hexadecimal"):
        decode(raw)


def test_a_fact_survives_the_bus_encoding() -> None:
    fact = ["s", b"\x01" * 16, b"\x02" * 16, b"\x03" * 16, b"", [b"\x04" * 16]]
    assert decode(encode(fact)) == fact
