"""The console's Settings page in a real browser: API tokens shown once and revoked,
the profile, the password, and provider keys that are only ever shown masked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.console.conftest import PASSWORD, Console, assert_accessible

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.slow

BUNDLED = "bundled/gemma-3-270m-q4_k_m"
OPENAI_KEY = "sk-proj-0123456789abcdefghijklmnopqrstuv"


def open_settings(browser: Any, console: Console, user: str, **size: int) -> Any:
    page = console.page(browser, user=user, **size)
    page.goto(console.url("/ui/settings"))
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    return page


def tokens_table(page: Any) -> Any:
    return page.get_by_role("table", name="API tokens")


def me_with(console: Console, token: str) -> httpx.Response:
    return httpx.get(console.url("/v1/users/me"), headers={"Authorization": f"Bearer {token}"})


def test_a_token_is_shown_once_works_and_stops_working_when_revoked(
    browser: Any, console: Console
) -> None:
    console.make_user("tess")
    page = open_settings(browser, console, "tess")
    expect(tokens_table(page)).to_contain_text("No API tokens yet.")
    page.get_by_label("Token name").fill("ci-bot")
    page.get_by_label("Expires in days").fill("30")
    page.get_by_role("button", name="Create token").click()

    shown = page.get_by_role("region", name="Your new token “ci-bot”")
    expect(shown).to_contain_text("it won't be shown again")
    secret = shown.locator(".secret").inner_text()
    assert secret.startswith("plg_")
    expect(shown.get_by_role("button", name="Copy the token")).to_be_focused()
    answer = me_with(console, secret)
    assert answer.status_code == 200
    assert answer.json()["username"] == "tess"
    row = tokens_table(page).get_by_role("row").filter(has_text="ci-bot")
    expect(row).to_contain_text("read, write")
    expect(row).to_contain_text(secret[:12] + "…")
    assert secret not in page.url
    stored = page.evaluate("JSON.stringify([localStorage, sessionStorage, document.cookie])")
    assert secret not in stored
    assert_accessible(page)

    # Gone once the page is left: after a reload the list has it, never its secret.
    page.reload()
    expect(row).to_contain_text("ci-bot")
    expect(page.get_by_role("region", name="Your new token")).to_have_count(0)
    assert secret not in page.content()
    console.screenshot(page, "settings")

    row.get_by_role("button", name="Revoke token ci-bot").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(tokens_table(page)).to_contain_text("No API tokens yet.")
    assert me_with(console, secret).status_code == 401


def test_a_token_may_not_be_wider_than_its_owners_limits(browser: Any, console: Console) -> None:
    user_id = console.make_user("lim")
    limited = console.api("PUT", f"/v1/users/{user_id}/limits", json={"rpm": 10})
    assert limited.status_code == 200, limited.text
    page = open_settings(browser, console, "lim")
    limits = page.get_by_role("region", name="Your limits")
    expect(limits.get_by_role("term")).to_have_text(["Requests per minute"])
    expect(limits.get_by_role("definition")).to_have_text(["10"])
    expect(page.get_by_role("checkbox", name="admin")).to_have_count(0)  # not an admin

    page.get_by_label("Token name").fill("greedy")
    page.get_by_text("Limits (optional)").click()
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_role("button", name="Create token").click()
    form = page.get_by_role("form", name="Create a token")
    expect(form.get_by_role("alert")).to_contain_text("rpm")
    expect(tokens_table(page)).to_contain_text("No API tokens yet.")

    page.get_by_label("Requests per minute").fill("5")
    page.get_by_label("Allowed models").fill("local:*")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("region", name="Your new token “greedy”")).to_be_visible()
    row = tokens_table(page).get_by_role("row").filter(has_text="greedy")
    expect(row).to_contain_text("Requests per minute: 5; Allowed models: local:*")
    assert_accessible(page)


def test_the_profile_and_the_preferred_model_are_saved(browser: Any, console: Console) -> None:
    console.make_user("pia")
    page = open_settings(browser, console, "pia")
    expect(page.locator("#account")).to_contain_text("pia")
    page.get_by_label("Display name").fill("Pia Pixel")
    page.get_by_label("Preferred model").select_option(BUNDLED)
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#account")).to_contain_text("Pia Pixel")

    page.reload()
    expect(page.locator("#account")).to_contain_text("Pia Pixel")
    expect(page.get_by_label("Display name")).to_have_value("Pia Pixel")
    expect(page.get_by_label("Preferred model")).to_have_value(BUNDLED)

    page.get_by_label("Preferred model").select_option("")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Profile saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Preferred model")).to_have_value("")


def test_a_password_is_changed_with_the_current_one(browser: Any, console: Console) -> None:
    console.make_user("paul")
    page = open_settings(browser, console, "paul")
    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    form = page.get_by_role("form", name="Change password")
    expect(form.get_by_role("alert")).to_be_visible()

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed.")).to_be_visible()
    expect(form.get_by_role("alert")).to_be_hidden()
    signed_in = httpx.post(
        console.url("/v1/users/login"),
        json={"username": "paul", "password": "a brand new passphrase"},
    )
    assert signed_in.status_code == 200
    page.reload()  # this sign-in is kept
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()


def test_a_provider_key_is_only_ever_shown_masked(browser: Any, console: Console) -> None:
    console.make_user("kai")
    page = open_settings(browser, console, "kai")
    keys = page.get_by_role("table", name="Provider keys")
    expect(keys).to_contain_text("No provider keys yet.")
    page.get_by_label("Provider", exact=True).select_option("openai")
    expect(page.get_by_label("Credential type")).to_have_value("api_key")
    expect(page.get_by_label("Endpoint")).to_be_hidden()

    page.get_by_label("API key", exact=True).fill("short")
    page.get_by_role("button", name="Save key").click()
    form = page.get_by_role("form", name="Add a provider key")
    expect(form.get_by_role("alert")).to_contain_text("API key:")

    page.get_by_label("API key", exact=True).fill(OPENAI_KEY)
    page.get_by_label("Label").fill("work")
    page.get_by_role("button", name="Save key").click()
    row = keys.get_by_role("row").filter(has_text="openai")
    expect(row).to_contain_text("sk-…stuv")
    expect(row).to_contain_text("work")
    expect(page.get_by_label("API key", exact=True)).to_have_value("")
    assert OPENAI_KEY not in page.content()
    page.reload()
    expect(row).to_contain_text("sk-…stuv")
    assert OPENAI_KEY not in page.content()
    assert_accessible(page)

    row.get_by_role("button", name="Delete the openai key").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(keys).to_contain_text("No provider keys yet.")


def test_the_settings_page_fits_a_phone(browser: Any, console: Console) -> None:
    console.make_user("phil", role="admin")
    page = open_settings(browser, console, "phil", width=390, height=844)
    expect(tokens_table(page)).to_be_visible()
    expect(page.get_by_role("checkbox", name="admin")).to_be_visible()
    console.screenshot(page, "settings-phone")
    page.get_by_text("Limits (optional)").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)
