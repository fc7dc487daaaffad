"""The console's Admin page in a real browser: an administrator invites a second
person, who registers through the link and sees none of the administrator's chats;
users, limits, usage, storage and requests as an administrator works them; and a
plain user kept out of it."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import PASSWORD, Console, assert_accessible
from tests.fixtures.prompts import GREEDY, LONG_RUNNING

expect = pytest.importorskip("playwright.sync_api").expect

TITLE = "Ada's plans for the engine"  # a chat only ada has
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def ada(console: Console) -> dict[str, str]:
    """An administrator person with one chat session of her own; her id and login token."""
    user_id = console.make_user("ada", role="admin")
    token = login(console, "ada")
    made = bearer(console, token, "POST", "/v1/sessions", json={"title": TITLE})
    assert made.status_code == 201, made.text
    return {"id": user_id, "token": token}


def login(console: Console, username: str) -> str:
    answer = httpx.post(
        console.url("/v1/users/login"), json={"username": username, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def bearer(console: Console, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, console.url(path), headers=headers, timeout=60, **kw)


def cookie_api(console: Console, page: Any, path: str) -> Any:
    """A GET with the page's own cookie credential (and the CSRF header it needs)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "pluggably_csrf")
    return page.context.request.get(console.url(path), headers={"X-CSRF-Token": csrf})


def admin_page(console: Console, browser: Any, section: str, **size: int) -> Any:
    page = console.page(browser, user="ada", **size)
    page.goto(console.url(f"/ui/admin/{section}"))
    expect(page.get_by_role("heading", level=2)).to_have_text(section.capitalize())
    return page


def ask_gemma(console: Console, token: str | None = None) -> str:
    """A short generation on the bundled model; its request id."""
    body = {
        "input": {"prompt": "Once upon a time"},
        "parameters": {"max_tokens": 4, "temperature": 0},
        "wait": True,
    }
    answer = (
        bearer(console, token, "POST", "/v1/generate", json=body)
        if token
        else console.api("POST", "/v1/generate", json=body)
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["request_id"])


def test_a_second_person_joins_by_invite_sees_only_their_own_and_is_disabled(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    page = admin_page(console, browser, "invites")
    expect(page.get_by_role("link", name="Invites")).to_have_attribute("aria-current", "page")
    assert_accessible(page)
    page.get_by_role("button", name="Create invite").click()
    link = page.locator(".secret .invite-link").inner_text()
    assert re.fullmatch(re.escape(console.base) + r"/ui/register\?invite=[A-Za-z0-9_\-%]+", link)
    expect(page.get_by_role("button", name="Copy link")).to_be_visible()
    invites = page.get_by_role("table", name="Invites")
    expect(invites.get_by_text("pending", exact=True)).to_have_count(1)
    console.screenshot(page, "admin-invites")

    newcomer = console.page(browser)
    newcomer.goto(link)
    newcomer.get_by_label("Username").fill("grace")
    newcomer.get_by_label("Password", exact=True).fill(PASSWORD)
    newcomer.get_by_label("Confirm password").fill(PASSWORD)
    newcomer.get_by_role("button", name="Create account").click()
    expect(newcomer).to_have_url(re.compile(r"/ui/chat"))
    expect(newcomer.get_by_role("link", name="Chat", exact=True)).to_be_visible()
    expect(newcomer.get_by_role("link", name="Admin")).to_be_hidden()
    newcomer.goto(console.url("/ui/chat"), wait_until="networkidle")
    assert TITLE not in newcomer.content()
    sessions = cookie_api(console, newcomer, "/v1/sessions")
    assert (sessions.status, sessions.json()["sessions"]) == (200, [])

    page.reload()
    expect(invites.get_by_text("pending", exact=True)).to_have_count(0)
    page.get_by_role("link", name="Users").click()
    users = page.get_by_role("table", name="Users")
    expect(users.get_by_role("cell", name="grace", exact=True)).to_be_visible()
    expect(page.get_by_label("Role for grace")).to_have_value("user")
    page.get_by_role("button", name="Disable grace").click()
    expect(page.get_by_role("button", name="Enable grace")).to_be_focused()
    assert cookie_api(console, newcomer, "/v1/users/me").status == 401
    newcomer.reload()
    expect(newcomer).to_have_url(re.compile(r"/ui/login"))


def test_the_server_refuses_to_let_an_administrator_lock_herself_out(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    page = admin_page(console, browser, "users")
    page.get_by_role("button", name="Disable ada").click()
    refused = page.locator(".admin-section .form-error")
    expect(refused).to_contain_text("cannot be disabled by yourself")
    expect(refused).to_have_attribute("role", "alert")
    page.get_by_label("Role for ada").select_option("user")
    expect(refused).to_contain_text("cannot be demoted by yourself")
    expect(page.get_by_label("Role for ada")).to_have_value("admin")
    assert console.api("GET", f"/v1/users/{ada['id']}").json()["role"] == "admin"


def test_users_search_role_and_limits_round_trip(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    linus = console.make_user("linus")
    page = admin_page(console, browser, "users")
    assert_accessible(page)
    console.screenshot(page, "admin-users")
    page.get_by_label("Search users").fill("linu")
    rows = page.get_by_role("table", name="Users").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_role("cell", name="linus", exact=True)).to_be_visible()

    page.get_by_label("Role for linus").select_option("admin")
    expect(page.get_by_role("status").filter(has_text="linus is now an admin")).to_be_visible()
    assert console.api("GET", f"/v1/users/{linus}").json()["role"] == "admin"

    page.get_by_role("button", name="Limits for linus").click()
    dialog = page.get_by_role("dialog", name="Limits for linus")
    expect(dialog.get_by_label("Requests per minute")).to_be_focused()
    dialog.get_by_label("Requests per minute").fill("5")
    dialog.get_by_label("Budget (USD)").fill("2.5")
    dialog.get_by_label("Budget period").select_option("week")
    dialog.get_by_label("Allowed models").fill("local:*\nbundled/*")
    assert_accessible(page)
    dialog.get_by_role("button", name="Save limits").click()
    expect(dialog).to_be_hidden()
    limits = console.api("GET", f"/v1/users/{linus}/limits").json()
    assert limits == {
        "rpm": 5,
        "tpm": None,
        "max_concurrent": None,
        "budget_usd": 2.5,
        "budget_period": "week",
        "models": ["local:*", "bundled/*"],
    }
    # Emptied fields are cleared.
    page.get_by_role("button", name="Limits for linus").click()
    expect(dialog.get_by_label("Requests per minute")).to_have_value("5")
    for label in ("Requests per minute", "Budget (USD)", "Allowed models"):
        dialog.get_by_label(label).fill("")
    dialog.get_by_label("Budget period").select_option("")
    dialog.get_by_role("button", name="Save limits").click()
    expect(dialog).to_be_hidden()
    assert set(console.api("GET", f"/v1/users/{linus}/limits").json().values()) == {None}


def test_the_users_section_fits_a_phone(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    page = admin_page(console, browser, "users", **PHONE)
    expect(page.get_by_role("table", name="Users")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert_accessible(page)
    console.screenshot(page, "admin-users-phone")


def test_usage_shows_a_chart_and_table_of_the_requests(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    for _ in range(2):
        ask_gemma(console)
    ask_gemma(console, ada["token"])
    report = console.api("GET", "/v1/usage", params={"user_id": "*", "group_by": "model"}).json()
    (gemma,) = [r for r in report["rows"] if r["key"] and "gemma" in r["key"]]
    assert gemma["requests"] >= 3

    page = admin_page(console, browser, "usage")
    page.get_by_label("Group by").select_option("model")
    page.get_by_label("Chart", exact=True).select_option("requests")
    chart = page.get_by_role("img", name=re.compile("^Requests by model: "))
    expect(chart).to_have_attribute(
        "aria-label", re.compile(re.escape(f"{gemma['key']} {gemma['requests']}"))
    )
    table = page.get_by_role("table", name="Usage")
    row = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name=gemma["key"]))
    expect(row.get_by_role("cell").first).to_have_text(str(gemma["requests"]))
    expect(table.locator("tfoot")).to_contain_text(str(report["totals"]["requests"]))
    assert_accessible(page)
    console.screenshot(page, "admin-usage")

    page.get_by_label("User", exact=True).select_option(label="Me")
    mine = console.api(
        "GET", "/v1/usage", params={"user_id": ada["id"], "group_by": "model"}
    ).json()
    expect(page.locator(".usage-totals")).to_contain_text(
        f"Total: {mine['totals']['requests']} requests"
    )
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = download.value
    assert re.fullmatch(r"usage-by-model-\d{8}-\d{8}\.csv", saved.suggested_filename)
    lines = Path(saved.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "key,name,requests,errors,prompt_tokens,completion_tokens,cost_usd"
    assert lines[-1].startswith(f"total,,{mine['totals']['requests']},")


def test_storage_dry_run_lists_what_cleaning_up_would_remove(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    stored = console.api("GET", "/v1/storage").json()
    would = console.api("POST", "/v1/storage/cleanup", json={"dry_run": True}).json()
    page = admin_page(console, browser, "storage")
    models = page.get_by_role("table", name="Stored models")
    expect(models.locator("tbody tr")).to_have_count(len(stored["models"]))
    cleanup = page.get_by_role("button", name="Clean up")
    expect(cleanup).to_be_disabled()
    page.get_by_role("button", name="Dry run").click()
    outcome = page.locator(".cleanup-outcome")
    if would["removed"]:
        expect(outcome).to_contain_text(
            f"Dry run: {len(would['removed'])} item(s) would be removed"
        )
        expect(cleanup).to_be_enabled()
    else:
        expect(outcome).to_have_text("Dry run: nothing would be removed.")
        expect(cleanup).to_be_disabled()
    assert console.api("GET", "/v1/storage").json()["models"] == stored["models"]
    assert_accessible(page)
    console.screenshot(page, "admin-storage")


def test_the_requests_table_lists_a_request_made_through_the_api(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    console.make_user("linus2")
    request_id = ask_gemma(console, login(console, "linus2"))
    page = admin_page(console, browser, "requests")
    row = page.get_by_role("table", name="Requests").locator(f'tr[data-request-id="{request_id}"]')
    expect(row).to_contain_text("linus2")
    expect(row).to_contain_text("completed")
    expect(row.get_by_role("button")).to_have_count(0)  # not ada's: only its owner may cancel
    # The live queue: the bundled model is loaded after answering.
    loaded = page.get_by_role("table", name="Loaded models")
    expect(loaded).to_contain_text("gemma")
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(row).to_have_count(0)
    page.get_by_label("Status", exact=True).select_option("completed")
    expect(row).to_have_count(1)
    # Refreshed without a reload: a new request appears within a refresh or two.
    later = ask_gemma(console, ada["token"])
    expect(page.locator(f'tr[data-request-id="{later}"]')).to_be_visible(timeout=15_000)
    assert_accessible(page)
    console.screenshot(page, "admin-requests")


def test_a_plain_user_is_sent_away_from_admin(browser: Any, console: Console) -> None:
    console.make_user("bertha")
    page = console.page(browser, user="bertha")
    page.goto(console.url("/ui/admin/users"))
    expect(page).to_have_url(re.compile(r"/ui/chat"))
    expect(page.get_by_role("link", name="Admin")).to_be_hidden()
    expect(page.get_by_role("heading", name="Admin")).to_have_count(0)
    assert cookie_api(console, page, "/v1/users").status == 403


def test_admin_opens_on_users_and_an_unknown_section_goes_there(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    page = console.page(browser, user="ada")
    for path in ("/ui/admin", "/ui/admin/nonsense"):
        page.goto(console.url(path))
        expect(page.get_by_role("heading", level=2)).to_have_text("Users")
        expect(page.get_by_role("link", name="Users")).to_have_attribute("aria-current", "page")
    expect(page).to_have_url(re.compile(r"/ui/admin/users$"))
    page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="Usage").click()
    expect(page).to_have_url(re.compile(r"/ui/admin/usage$"))
    expect(page.get_by_role("heading", level=2)).to_have_text("Usage")


def test_an_administrator_cancels_her_own_running_request(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    # Counting runs for thousands of tokens under greedy decoding: still running when
    # the page shows it ("Once upon a time" may end its answer in a line).
    body = {"input": {"prompt": LONG_RUNNING}, "parameters": {"max_tokens": 2000, **GREEDY}}
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(bearer, console, ada["token"], "POST", "/v1/generate", json=body)
        request_id = running_request(console, ada["token"])
        page = admin_page(console, browser, "requests")
        page.get_by_label("Status", exact=True).select_option("running")
        page.get_by_role("button", name=f"Cancel request {request_id}").click()
        expect(page.get_by_role("status").filter(has_text="Request cancelled.")).to_be_visible()
        answer.result(timeout=60)
    record = bearer(console, ada["token"], "GET", f"/v1/requests/{request_id}/status").json()
    assert record["status"] == "cancelled"


def running_request(console: Console, token: str) -> str:
    """The id of the caller's request once the list shows it running."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = bearer(console, token, "GET", "/v1/requests", params={"status": "running"})
        if found.json()["requests"]:
            return str(found.json()["requests"][0]["request_id"])
        time.sleep(0.1)
    raise AssertionError("the request never ran")


def test_leaving_a_page_stops_its_refreshes_and_back_and_forward_return(
    browser: Any, console: Console, ada: dict[str, str]
) -> None:
    page = console.page(browser, user="ada")
    polls: list[str] = []
    refreshing = re.compile(r"/v1/(requests\?|models/loaded|jobs)")
    page.on("request", lambda r: polls.append(r.url) if refreshing.search(r.url) else None)
    page.goto(console.url("/ui/models"))
    expect(page.get_by_role("heading", name="Loaded now")).to_be_visible()
    page.get_by_role("link", name="Admin", exact=True).click()
    admin_nav = page.get_by_role("navigation", name="Admin sections")
    admin_nav.get_by_role("link", name="Requests").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Requests")
    expect(page.get_by_role("heading", name="Live queue")).to_be_visible()
    page.get_by_role("link", name="Chat", exact=True).click()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    polls.clear()
    page.wait_for_timeout(6500)  # longer than every refresh period (2, 3 and 5 s)
    assert polls == []

    page.go_back()
    expect(page.get_by_role("heading", level=2)).to_have_text("Requests")
    page.go_back()
    expect(page.get_by_role("heading", level=2)).to_have_text("Users")
    page.go_back()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    page.go_forward()
    expect(page.get_by_role("heading", level=2)).to_have_text("Users")
