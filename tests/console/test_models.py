"""The console's Models page in a real browser: the catalog, load and unload of the
bundled model, and downloads from the loopback Hugging Face hub with live progress
and cancel."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import (
    Console,
    assert_accessible,
    close_console,
    start_console,
)
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.loopback import serving

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.slow

MB = 1 << 20
BUNDLED = "bundled/gemma-3-270m-q4_k_m"
# A download of one file of a repo registers the model under the repo and file's names.
TINY = "acme/tiny-GGUF/tiny-Q4_K_M"
SLOW = "acme/slow-GGUF"
# Slow enough that a 3 MB download takes several seconds: the page's progress is seen
# moving (the server reports it every second).
THROTTLE_BPS = 600_000
DOWNLOAD_TIMEOUT_MS = 60_000
ABOVE_ZERO = re.compile(r"^(?!0$)\d+(\.\d+)?$")  # a progress value that moved


def gguf_bytes(size: int, seed: int = 0) -> bytes:
    """A file the server registers as GGUF (its magic, then filler)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 32
    return (b"GGUF" + block * (size // len(block) + 1))[:size]


@pytest.fixture
def hub_console(browser: Any, tmp_path: Path) -> Iterator[tuple[Console, FakeHub]]:
    """A server of its own whose Hugging Face hub is the loopback one, holding two
    GGUF repos: one to download, one to cancel."""
    hub = FakeHub()
    hub.add_model(
        "acme/tiny-GGUF",
        {
            "tiny-Q4_K_M.gguf": gguf_bytes(3 * MB, 1),
            "tiny-Q8_0.gguf": gguf_bytes(4 * MB, 2),
            "README.md": b"---\nlicense: apache-2.0\n---\n# Tiny\n\nA tiny test model.\n",
        },
        tags=("gguf", "text-generation"),
        pipeline_tag="text-generation",
        library_name="gguf",
        downloads=500,
        likes=7,
    )
    hub.add_model(
        "acme/slow-GGUF",
        {"slow-Q4_K_M.gguf": gguf_bytes(8 * MB, 3)},
        tags=("gguf",),
        library_name="gguf",
        downloads=100,
    )
    hub.throttle_bps = THROTTLE_BPS
    with serving(hub, "hub"):
        console = start_console(tmp_path, None, HF_ENDPOINT=hub.url)
        try:
            yield console, hub
        finally:
            close_console(console)


def progress_values(bar: Any, until: float) -> list[float]:
    """The progress bar's value, read every 100 ms until it reaches 100 (or time runs
    out); values only while it shows one (a job not yet sized has none)."""
    seen: list[float] = []
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        value = bar.evaluate("e => e.hasAttribute('value') ? e.value : null")
        if value is not None and (not seen or value != seen[-1]):
            seen.append(value)
        if value == 100:
            break
        time.sleep(0.1)
    return seen


def value_above(page: Any, bar: Any, floor: float) -> None:
    page.wait_for_function("([e, floor]) => e.value > floor", arg=[bar.element_handle(), floor])


def search_hub(page: Any, query: str) -> None:
    page.get_by_label("Search the hub").fill(query)
    page.get_by_role("button", name="Search", exact=True).click()


def hub_result(page: Any, repo: str) -> Any:
    return page.get_by_role("listitem").filter(
        has=page.get_by_role("heading", name=repo, exact=True)
    )


def catalog_row(page: Any, model_id: str) -> Any:
    return (
        page.get_by_role("table", name="Models", exact=True)
        .get_by_role("row")
        .filter(has_text=model_id)
    )


def test_an_admin_downloads_a_model_with_live_progress_and_cancels_another(
    browser: Any, hub_console: tuple[Console, FakeHub]
) -> None:
    console, hub = hub_console
    console.make_user("ada", role="admin")
    page = console.page(browser, user="ada")
    page.goto(console.url("/ui/models"))
    expect(page.get_by_role("heading", name="Download from Hugging Face")).to_be_visible()
    expect(page.get_by_text("No downloads yet.")).to_be_visible()

    search_hub(page, "GGUF")
    tiny = hub_result(page, "acme/tiny-GGUF")
    expect(tiny).to_contain_text("500 downloads")
    files = tiny.get_by_label("File")
    expect(files.locator("option")).to_have_text(
        ["Recommended (the server chooses)", "tiny-Q4_K_M.gguf (3.1 MB)", "tiny-Q8_0.gguf (4.2 MB)"]
    )
    assert_accessible(page)

    files.select_option("tiny-Q4_K_M.gguf")
    tiny.get_by_role("button", name="Download acme/tiny-GGUF").click()
    bar = page.get_by_role("progressbar", name=f"Download progress for {TINY}", exact=True)
    expect(bar).to_be_visible()
    seen = progress_values(bar, DOWNLOAD_TIMEOUT_MS / 1000)
    moving = [v for v in seen if 0 < v < 100]
    assert len(moving) >= 2, seen  # read at least twice before the end,
    assert moving == sorted(moving), seen  # rising,
    assert seen[-1] == 100, seen  # to the end
    job = page.locator("article.job").filter(has_text=TINY)
    expect(job.get_by_role("status")).to_have_text("Downloaded 3.1 MB.")
    expect(job.get_by_role("button", name=f"Cancel download of {TINY}")).to_be_hidden()
    # The finished download is in the catalog: a local text model, available.
    expect(catalog_row(page, TINY)).to_contain_text("localtextavailable")
    assert hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")] == 3 * MB
    assert hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q8_0.gguf")] == 0

    # A second download, cancelled from the page while it runs.
    slow = hub_result(page, SLOW)
    slow.get_by_role("button", name=f"Download {SLOW}").click()  # the server picks the file
    slow_bar = page.get_by_role("progressbar", name=f"Download progress for {SLOW}", exact=True)
    expect(slow_bar).to_have_attribute("value", ABOVE_ZERO)
    value_above(page, slow_bar, 10)  # its speed and time left are shown
    page.locator("section.catalog").evaluate("e => e.scrollIntoView()")
    console.screenshot(page, "models")
    # Opened again while it runs, the page follows the running job.
    before = float(slow_bar.get_attribute("value"))
    page.reload()
    expect(slow_bar).to_have_attribute("value", ABOVE_ZERO)
    value_above(page, slow_bar, before)
    page.get_by_role("button", name=f"Cancel download of {SLOW}").click()
    slow_job = page.locator("article.job").filter(has_text=SLOW)
    expect(slow_job.get_by_role("status")).to_have_text("Cancelled.")
    expect(slow_job.get_by_role("button", name=f"Cancel download of {SLOW}")).to_be_hidden()
    jobs = console.api("GET", "/v1/jobs").json()["jobs"]
    assert {j["model_id"]: j["status"] for j in jobs} == {SLOW: "cancelled", TINY: "completed"}
    assert hub.bytes_sent[(SLOW, "slow-Q4_K_M.gguf")] < 8 * MB
    expect(catalog_row(page, SLOW)).to_have_count(0)
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 844})  # results and jobs fit a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 860})

    # Opening the page again shows the jobs as they ended.
    page.reload()
    expect(page.locator("article.job")).to_have_count(2)
    expect(page.locator("article.job").filter(has_text=SLOW).get_by_role("status")).to_have_text(
        "Cancelled."
    )

    # The hub failing is a message on the page, not a broken page.
    hub.down = True
    search_hub(page, "GGUF")
    hub_section = page.get_by_role("region", name="Download from Hugging Face")
    # (the server's hub client retries a failing hub for a while first)
    alert = hub_section.get_by_role("alert")
    expect(alert).to_contain_text("is unreachable or failing", timeout=DOWNLOAD_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()


def loaded_ids(console: Console) -> list[str]:
    return [m["model_id"] for m in console.api("GET", "/v1/models/loaded").json()["models"]]


def test_an_admin_loads_and_unloads_the_bundled_model(browser: Any, console: Console) -> None:
    console.make_user("lin", role="admin")
    page = console.page(browser, user="lin")
    page.goto(console.url("/ui/models"))
    row = catalog_row(page, BUNDLED)
    badge = row.locator(".badge.runtime")
    expect(row.get_by_text("Default", exact=True)).to_be_visible()
    expect(badge).to_have_text("loaded")

    # The default model is pinned: the server refuses a plain unload, the page offers force.
    row.get_by_role("button", name=f"Unload {BUNDLED}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("pinned")
    assert_accessible(page)
    dialog.get_by_role("button", name="Force unload").click()
    expect(badge).to_have_text("unloaded")
    loaded = page.get_by_role("region", name="Loaded now")
    expect(loaded).not_to_contain_text(BUNDLED)
    assert BUNDLED not in loaded_ids(console)

    row.get_by_role("button", name=f"Load {BUNDLED}").click()
    expect(badge).to_have_text("loaded", timeout=60_000)
    expect(row.get_by_role("button", name=f"Unload {BUNDLED}")).to_be_focused()
    expect(loaded.get_by_role("table", name="Loaded models")).to_contain_text(BUNDLED)
    assert BUNDLED in loaded_ids(console)
    assert_accessible(page)


def test_a_person_sees_the_catalog_without_admin_controls(browser: Any, console: Console) -> None:
    console.make_user("pat")
    page = console.page(browser, user="pat")
    page.goto(console.url("/ui/models"))
    expect(catalog_row(page, BUNDLED)).to_contain_text("Default")
    expect(page.get_by_role("region", name="Loaded now")).to_be_visible()
    for name in ("Load", "Unload", "Make default", "Download", "Search"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_label("Search the hub")).to_have_count(0)

    # The filters narrow the catalog.
    page.get_by_label("Modality").select_option("image")
    expect(page.get_by_text("No model matches.")).to_be_visible()
    page.get_by_label("Modality").select_option("")
    page.get_by_label("Search models").fill("gemma")
    expect(catalog_row(page, BUNDLED)).to_be_visible()
    page.get_by_label("Search models").fill("no-such-model")
    expect(page.get_by_text("No model matches.")).to_be_visible()
    assert_accessible(page)


def test_the_models_page_fits_a_phone(browser: Any, console: Console) -> None:
    console.make_user("max", role="admin")
    page = console.page(browser, user="max", width=390, height=844)
    page.goto(console.url("/ui/models"))
    expect(catalog_row(page, BUNDLED)).to_be_visible()
    expect(page.get_by_label("Search the hub")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)
    console.screenshot(page, "models-phone")
