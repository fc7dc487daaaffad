"""Signing in, the first-run setup and registering from an invite, through the
console in a real browser against a real `pluggably serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.conftest import (
    PASSWORD,
    Console,
    assert_accessible,
    close_console,
    start_console,
)

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.slow

NAV = ("Chat", "Models", "Settings", "Admin")


@pytest.fixture(scope="module")
def server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A server with the admin key and no model: these pages need none."""
    running = start_console(tmp_path_factory.mktemp("sign-in"), None)
    try:
        yield running
    finally:
        close_console(running)


def _fill_account(page: Any, username: str, password: str, confirm: str | None = None) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Confirm password").fill(confirm if confirm is not None else password)


def _sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_the_first_run_link_creates_the_admin_who_then_signs_in_and_out(
    browser: Any, tmp_path: Any
) -> None:
    console = start_console(tmp_path, None, admin_key=False)
    try:
        page = console.page(browser)
        page.goto(console.setup_link())
        expect(page.get_by_role("heading", name="Set up Pluggably")).to_be_visible()
        expect(page).to_have_url(console.url("/ui/setup"))  # the token left the address bar
        assert page.get_by_label("Password", exact=True).count() == 1
        assert_accessible(page)
        console.screenshot(page, "setup")

        _fill_account(page, "admin", PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("alert")).to_contain_text("reserved")
        _fill_account(page, "grace", PASSWORD, "not the same password")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("alert")).to_contain_text("not the same")
        assert_accessible(page)

        _fill_account(page, "grace", PASSWORD)
        page.get_by_label("Display name").fill("Grace Hopper")
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(console.url("/ui/login?setup=done"))
        expect(page.get_by_text("Administrator created — sign in")).to_be_visible()

        _sign_in(page, "grace")
        expect(page).to_have_url(re.compile(r"/ui/chat"))
        for name in NAV:
            expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(page.locator("#account")).to_contain_text("Grace Hopper")

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/ui/login"))
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_role("link", name="Chat", exact=True)).to_have_count(0)

        # The link worked once.
        page.goto(console.setup_link())
        expect(page.get_by_text("Setup is already complete")).to_be_visible()
    finally:
        close_console(console)


def test_before_setup_the_sign_in_page_points_to_the_servers_log(
    browser: Any, tmp_path: Any
) -> None:
    console = start_console(tmp_path, None, admin_key=False)
    try:
        page = console.page(browser)
        page.goto(console.url("/ui/login"))
        expect(page.get_by_text("one-time setup link is in the server's log")).to_be_visible()
        page.goto(console.url("/ui/setup"))  # without the token
        expect(page.get_by_text("needs the one-time setup link")).to_be_visible()
        expect(page.get_by_role("button", name="Create account")).to_have_count(0)
    finally:
        close_console(console)


def test_a_wrong_password_shows_an_error_and_the_right_one_signs_in(
    browser: Any, server: Console
) -> None:
    server.make_user("alice")
    page = server.page(browser)
    page.goto(server.url("/ui/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(page)
    server.screenshot(page, "login")

    _sign_in(page, "alice", "not the password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username, email or password")
    expect(page).to_have_url(server.url("/ui/login"))
    assert_accessible(page)

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/chat"))
    expect(page.get_by_role("link", name="Chat", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)


def test_signing_in_returns_to_the_page_the_person_asked_for(browser: Any, server: Console) -> None:
    server.make_user("carol")
    page = server.page(browser)
    page.goto(server.url("/ui/settings"))
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fsettings"))
    _sign_in(page, "carol")
    expect(page).to_have_url(server.url("/ui/settings"))


def test_the_sign_in_page_fits_a_phone(browser: Any, server: Console) -> None:
    page = server.page(browser, width=390, height=844)
    page.goto(server.url("/ui/login"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)


def test_an_invite_link_registers_and_signs_the_person_in(browser: Any, server: Console) -> None:
    made = server.api("POST", "/v1/users/invites", json={})
    assert made.status_code == 201, made.text
    page = server.page(browser)
    page.goto(server.url(f"/ui/register?invite={made.json()['token']}"))
    expect(page.get_by_role("heading", name="Create account")).to_be_visible()
    expect(page).to_have_url(server.url("/ui/register"))  # the invite left the address bar
    expect(page.get_by_text("At least 10 characters, and not your username")).to_be_visible()
    assert_accessible(page)
    server.screenshot(page, "register")

    _fill_account(page, "dave", "dave")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 10 characters")

    _fill_account(page, "dave", PASSWORD)
    page.get_by_label("Display name").fill("Dave")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/ui/chat"))
    expect(page.get_by_role("link", name="Chat", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    expect(page.locator("#account")).to_contain_text("Dave")
    login = {"username": "dave", "password": PASSWORD}
    assert server.api("POST", "/v1/users/login", json=login).status_code == 200


def test_without_an_invite_the_register_page_explains(browser: Any, server: Console) -> None:
    page = server.page(browser)
    page.goto(server.url("/ui/register"))
    expect(page.get_by_text("need an invite")).to_be_visible()
    expect(page.get_by_role("button", name="Create account")).to_have_count(0)


def test_an_unknown_address_says_page_not_found(browser: Any, server: Console) -> None:
    server.make_user("erin")
    page = server.page(browser, user="erin")
    page.goto(server.url("/ui/no-such-page"))
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page).to_have_url(server.url("/ui/no-such-page"))
    page.get_by_role("link", name="Go to the chat").click()
    expect(page).to_have_url(server.url("/ui/chat"))


def test_a_server_out_of_reach_is_said_and_the_page_comes_back_on_try_again(
    browser: Any, server: Console
) -> None:
    server.make_user("frank")
    page = server.page(browser, user="frank")
    page.route("**/v1/users/me", lambda route: route.abort())  # the server is restarting
    page.goto(server.url("/ui/settings"))
    expect(page.get_by_role("alert")).to_contain_text("could not be reached")
    page.unroute("**/v1/users/me")
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()


def test_a_session_that_ends_mid_page_returns_to_the_same_address_after_sign_in(
    browser: Any, server: Console
) -> None:
    server.make_user("gina")
    page = server.page(browser, user="gina")
    page.goto(server.url("/ui/chat"))
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    page.context.clear_cookies()  # the session expired
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fsettings"))
    _sign_in(page, "gina")
    expect(page).to_have_url(server.url("/ui/settings"))
