"""Login and registration throttling that a stranger cannot turn against an account's
owner, and that says nothing about which accounts exist (issue #15)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from pluggably.app import create_app
from pluggably.auth.throttle import LoginThrottle
from pluggably.errors import RateLimited
from tests.conftest import (
    PASSWORD,
    assert_envelope,
    client_for,
    invite,
    make_settings,
    register,
    running,
)

WRONG = "not-the-password-at-all"


@pytest.fixture
async def throttled_app(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> AsyncIterator[FastAPI]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    app = create_app(make_settings(tmp_path, database_url, **overrides))
    async with running(app):
        yield app


async def _login(client: httpx.AsyncClient, identifier: str, password: str) -> httpx.Response:
    return await client.post("/v1/users/login", json={"username": identifier, "password": password})


def _assert_throttled(response: httpx.Response, window_s: int = 900) -> None:
    detail = assert_envelope(response, 429, "rate_limited")
    assert 1 <= detail["retry_after"] <= window_s
    assert response.headers["retry-after"] == str(detail["retry_after"])


async def test_failures_from_one_address_do_not_lock_the_owner_out_from_another(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as owner:
        assert (await register(owner, "victim")).status_code == 201
    async with client_for(throttled_app, client_host="10.6.6.6") as attacker:
        for _ in range(5):
            assert_envelope(await _login(attacker, "victim", WRONG), 401, "unauthorized")
        # The attacker's own address is refused on this account, even with the password.
        _assert_throttled(await _login(attacker, "victim", WRONG))
        _assert_throttled(await _login(attacker, "victim", PASSWORD))
    async with client_for(throttled_app, client_host="10.0.0.1") as owner:
        assert (await _login(owner, "victim", PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "throttled_app",
    [{"login_max_failures": 100, "login_max_failures_per_address": 4}],
    indirect=True,
)
async def test_one_address_spraying_many_accounts_is_throttled(throttled_app: FastAPI) -> None:
    async with client_for(throttled_app, client_host="10.6.6.6") as attacker:
        for name in ("amy", "bob", "cat", "dan"):
            assert_envelope(await _login(attacker, name, WRONG), 401, "unauthorized")
        _assert_throttled(await _login(attacker, "eve", WRONG))


@pytest.mark.parametrize(
    "throttled_app",
    [{"login_max_failures": 2, "login_slowdown_after": 6, "login_slowdown_max_s": 0.4}],
    indirect=True,
)
async def test_right_password_still_logs_in_after_failures_from_many_addresses(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as owner:
        assert (await register(owner, "victim")).status_code == 201
    for i in range(10):
        async with client_for(throttled_app, client_host=f"10.6.6.{i}") as attacker:
            for _ in range(2):
                assert_envelope(await _login(attacker, "victim", WRONG), 401, "unauthorized")
    # Beyond login_slowdown_after failures on the account, each attempt waits first.
    async with client_for(throttled_app, client_host="10.7.7.7") as attacker:
        started = time.monotonic()
        assert_envelope(await _login(attacker, "victim", WRONG), 401, "unauthorized")
        assert time.monotonic() - started >= 0.3
    async with client_for(throttled_app, client_host="10.0.0.2") as owner:
        assert (await _login(owner, "victim", PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "throttled_app",
    [{"login_slowdown_after": 2, "login_slowdown_max_s": 0.3}],
    indirect=True,
)
async def test_parallel_attempts_on_one_name_are_paced_not_let_through_together(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as owner:
        assert (await register(owner, "victim")).status_code == 201
    for i in range(3):
        async with client_for(throttled_app, client_host=f"10.6.6.{i}") as attacker:
            assert_envelope(await _login(attacker, "victim", WRONG), 401, "unauthorized")

    async def guess(i: int) -> httpx.Response:
        async with client_for(throttled_app, client_host=f"10.8.0.{i}") as attacker:
            return await _login(attacker, "victim", WRONG)

    # Ten fresh addresses at once: each waits its own turn, 0.3 s after the previous.
    started = time.monotonic()
    responses = await asyncio.gather(*(guess(i) for i in range(10)))
    assert time.monotonic() - started >= 9 * 0.3
    for response in responses:
        assert_envelope(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "throttled_app",
    [{"login_max_failures": 2, "login_max_failures_per_account": 4}],
    indirect=True,
)
async def test_past_the_account_cap_only_addresses_it_logged_in_from_get_through(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app, client_host="2001:db8:0:1::10") as owner:
        assert (await register(owner, "victim")).status_code == 201
        assert (await _login(owner, "victim", PASSWORD)).status_code == 200
    for name in ("victim", "ghost"):
        for i in range(2):
            async with client_for(throttled_app, client_host=f"10.6.6.{i}") as attacker:
                for _ in range(2):
                    assert_envelope(await _login(attacker, name, WRONG), 401, "unauthorized")
        # A new address is refused on the name, whether or not it names an account,
        # even with the right password.
        async with client_for(throttled_app, client_host="10.9.9.9") as stranger:
            _assert_throttled(await _login(stranger, name, PASSWORD))
    # The owner's network (same /64) logged in before: it still gets through.
    async with client_for(throttled_app, client_host="2001:db8:0:1::20") as owner:
        assert (await _login(owner, "victim", PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "throttled_app",
    [{"login_max_failures": 2, "login_max_failures_per_account": 4}],
    indirect=True,
)
async def test_username_and_email_of_one_account_share_its_cap(throttled_app: FastAPI) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as owner:
        response = await register(owner, "victim", email="victim@example.org")
        assert response.status_code == 201
    for host, name in (("10.6.6.1", "victim"), ("10.6.6.2", "victim@example.org")):
        async with client_for(throttled_app, client_host=host) as attacker:
            for _ in range(2):
                assert_envelope(await _login(attacker, name, WRONG), 401, "unauthorized")
    async with client_for(throttled_app, client_host="10.9.9.9") as stranger:
        _assert_throttled(await _login(stranger, "victim", PASSWORD))
        # A name that is no account's is not touched by the account's cap.
        assert_envelope(await _login(stranger, "ghost", WRONG), 401, "unauthorized")


@pytest.mark.parametrize(
    "throttled_app",
    [{"login_slowdown_after": 1, "login_slowdown_max_s": 2.0}],
    indirect=True,
)
async def test_a_slowed_password_change_waits_without_holding_a_database_connection(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as client:
        assert (await register(client, "owner")).status_code == 201
        token = (await _login(client, "owner", PASSWORD)).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        body = {"current_password": WRONG, "new_password": "another-new-password"}

        async def wrong() -> float:
            started = time.monotonic()
            response = await client.post("/v1/users/change-password", json=body, headers=auth)
            assert_envelope(response, 400, "invalid_parameter")
            return time.monotonic() - started

        await wrong()
        held: list[float] = []
        taken: dict[int, float] = {}

        def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
            taken[id(record)] = time.monotonic()

        def checkin(_dbapi: Any, record: Any) -> None:
            if id(record) in taken:
                held.append(time.monotonic() - taken.pop(id(record)))

        pool = throttled_app.state.container.db.engine.sync_engine.pool
        event.listen(pool, "checkout", checkout)
        event.listen(pool, "checkin", checkin)
        try:
            # Failures 1..4 ask for 0.25, 0.5, 1 and 2 s of spacing.
            durations = await asyncio.gather(*(wrong() for _ in range(4)))
        finally:
            event.remove(pool, "checkout", checkout)
            event.remove(pool, "checkin", checkin)
    assert max(durations) >= 0.7
    assert held
    assert max(held) < 0.5


async def test_throttling_treats_unknown_and_existing_accounts_alike(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as owner:
        response = await register(owner, "known", email="known@example.org")
        assert response.status_code == 201
    async with client_for(throttled_app, client_host="10.6.6.6") as attacker:
        for name in ("known", "ghost"):
            for _ in range(5):
                assert_envelope(await _login(attacker, name, WRONG), 401, "unauthorized")
            _assert_throttled(await _login(attacker, name, WRONG))
        # Whether this address is another name of a throttled account is not told.
        for email in ("known@example.org", "ghost@example.org"):
            assert_envelope(await _login(attacker, email, WRONG), 401, "unauthorized")


async def test_a_bad_invite_answers_alike_for_taken_and_free_usernames(
    throttled_app: FastAPI,
) -> None:
    async with client_for(throttled_app) as client:
        assert (await register(client, "taken")).status_code == 201
        for token in (None, "inv_nope"):
            answers = []
            for name in ("taken", "admin", "free-name"):
                body = {"username": name, "password": PASSWORD, "invite_token": token}
                response = await client.post("/v1/users/register", json=body)
                answers.append((response.status_code, response.json()["detail"]["message"]))
            assert answers[0][0] == 400
            assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize(
    "throttled_app", [{"registration_max_failures_per_address": 3}], indirect=True
)
async def test_registration_attempts_are_throttled_per_address(throttled_app: FastAPI) -> None:
    async with client_for(throttled_app, client_host="10.0.0.1") as first:
        assert (await register(first, "taken")).status_code == 201
    async with client_for(throttled_app, client_host="10.6.6.6") as prober:
        token = await invite(prober)
        probe = {"username": "taken", "password": PASSWORD, "invite_token": token}
        for _ in range(2):
            r = await prober.post("/v1/users/register", json=probe)
            assert_envelope(r, 409, "conflict")
        bad = {"username": "fresh", "password": PASSWORD, "invite_token": "inv_nope"}
        assert_envelope(await prober.post("/v1/users/register", json=bad), 400, "invalid_invite")
        _assert_throttled(await prober.post("/v1/users/register", json=probe))
        # A valid registration from the throttled address waits too.
        good = {"username": "fresh", "password": PASSWORD, "invite_token": token}
        _assert_throttled(await prober.post("/v1/users/register", json=good))
    async with client_for(throttled_app, client_host="10.0.0.2") as other:
        good = {"username": "fresh", "password": PASSWORD, "invite_token": token}
        assert (await other.post("/v1/users/register", json=good)).status_code == 201


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_throttle_maps_stay_bounded_while_keys_cycle() -> None:
    clock = _Clock()
    throttle = LoginThrottle(
        5, 20, 60, slowdown_after=10, slowdown_max_s=0.0, max_tracked=50, clock=clock
    )
    for i in range(500):
        address = f"10.0.{i // 200}.{i % 200}"
        await throttle.attempt(f"user{i}", address)
        throttle.attempt_on_account(f"account:{i}", address)
        throttle.succeeded(f"user{i}", address, account=f"account:{i}", aliases=[f"u{i}@x.org"])
    # pairs, addresses, slowed names, account budgets, remembered addresses
    assert throttle.tracked() <= 5 * 50
    # Entries whose failures have all left the window are dropped as new ones arrive
    # (remembered addresses last 30 days).
    clock.now = 61
    await throttle.attempt("late", "10.9.9.9")
    assert throttle.tracked() == 4 + 50


async def test_throttle_refuses_with_the_wait_until_the_oldest_failure_expires() -> None:
    clock = _Clock()
    throttle = LoginThrottle(2, 20, 60, slowdown_after=10, slowdown_max_s=0.0, clock=clock)
    await throttle.attempt("acct", "a")
    clock.now = 10
    await throttle.attempt("acct", "a")
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt("acct", "a")
    assert refused.value.retry_after == 50
    await throttle.attempt("acct", "b")


async def test_an_ipv6_client_is_throttled_by_its_64_prefix() -> None:
    throttle = LoginThrottle(100, 2, 60, slowdown_after=10, slowdown_max_s=0.0)
    await throttle.attempt("a", "2001:db8:1:2::1")
    await throttle.attempt("b", "2001:db8:1:2:ffff::9")
    with pytest.raises(RateLimited):
        await throttle.attempt("c", "2001:db8:1:2::77")
    await throttle.attempt("c", "2001:db8:1:3::1")


class _Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_an_attempt_whose_turn_is_too_far_off_is_refused_not_queued() -> None:
    clock, sleeps = _Clock(), _Sleeps()
    throttle = LoginThrottle(
        5, 20, 60, slowdown_after=1, slowdown_max_s=1.0, max_wait_s=2.0, clock=clock, sleep=sleeps
    )
    for i in range(5):
        await throttle.attempt("acct", f"10.0.0.{i}")
    # Turns spaced 0.25, 0.5, 1 and 1 s after the first failure.
    assert sleeps.waits == [0.25, 0.75, 1.75]
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt("acct", "10.0.0.9")
    assert refused.value.retry_after == 1
    # The refused attempt took no turn: once the queue drains, the next one waits less.
    clock.now = 2.0
    await throttle.attempt("acct", "10.0.0.9")
    assert sleeps.waits[-1] == 0.75


async def test_an_address_the_name_logged_in_from_is_neither_paced_nor_capped() -> None:
    clock, sleeps = _Clock(), _Sleeps()
    throttle = LoginThrottle(
        5, 20, 60, slowdown_after=1, slowdown_max_s=1.0, per_account=3, clock=clock, sleep=sleeps
    )
    await throttle.attempt("acct", "2001:db8::1")
    throttle.succeeded("acct", "2001:db8::1", account="account:1", aliases=["a@x.org"])
    for i in range(3):
        await throttle.attempt("acct", f"10.0.0.{i}")
        throttle.attempt_on_account("account:1", f"10.0.0.{i}")
    with pytest.raises(RateLimited):
        await throttle.attempt("acct", "10.0.0.9")
    with pytest.raises(RateLimited):
        throttle.attempt_on_account("account:1", "10.0.0.9")
    sleeps.waits.clear()
    for name in ("acct", "a@x.org"):
        await throttle.attempt(name, "2001:db8::2")
        throttle.attempt_on_account("account:1", "2001:db8::2")
    assert sleeps.waits == []


async def test_flooding_fresh_names_does_not_reset_an_attacked_accounts_cap() -> None:
    clock = _Clock()
    throttle = LoginThrottle(
        5,
        10**6,
        60,
        slowdown_after=10,
        slowdown_max_s=0.0,
        per_account=20,
        max_tracked=50,
        clock=clock,
    )
    for i in range(20):
        await throttle.attempt("victim", f"10.0.0.{i}")
    for i in range(500):
        await throttle.attempt(f"junk{i}", "10.6.6.6")
    with pytest.raises(RateLimited):
        await throttle.attempt("victim", "10.9.9.9")
