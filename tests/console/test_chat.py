"""The console's Chat page in a real browser, against a real server without the admin
key: the first-run setup, signing in and a streamed answer from the bundled model that
is stopped and still there after a reload; rename, delete and regenerate; sanitized
markdown; the queue position while the bundled model is busy; accessibility, the
screenshot and phone width.

The provider answers that must be exact (markdown with a code block, a script that must
not run, a second answer) come from the OpenAI simulator, which the server reaches
with its own key for administrators (the first account is one)."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import (
    PASSWORD,
    Console,
    assert_accessible,
    close_console,
    start_console,
)
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import OpenAISim, message_text
from tests.fixtures.prompts import LONG_RUNNING

pytestmark = pytest.mark.slow

PERSON = "ada"
GEMMA = "bundled/gemma-3-270m-q4_k_m"
SIM_MODEL = "openai:gpt-4o-mini"
CODE_ANSWER = (
    "Here is a function that adds two numbers:\n\n"
    "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n"
    "Call it as `add(2, 3)`; it returns **5**."
)
NUMBERED = re.compile(r"Answer number \d+\.")
HOSTILE_ANSWER = (
    "Look: <img src=x onerror=\"window.__xss = 'img'\"> and "
    "<script>window.__xss = 'script'</script> and [a link](javascript:window.__xss='link')."
)


def _reply(counter: Iterator[int]) -> Callable[[dict[str, Any]], str]:
    """The simulator's answer, chosen by the person's last message."""

    def reply(body: dict[str, Any]) -> str:
        last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
        text = message_text(last)
        if "code" in text:
            return CODE_ANSWER
        if "hostile" in text:
            return HOSTILE_ANSWER
        return f"Answer number {next(counter)}."

    return reply


@pytest.fixture(scope="module")
def sim() -> Iterator[OpenAISim]:
    with serving(OpenAISim(), "the OpenAI simulator") as running:
        running.set_reply("gpt-4o-mini", _reply(itertools.count(1)))
        yield running


@pytest.fixture(scope="module")
def chat_console(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path, sim: OpenAISim
) -> Iterator[Console]:
    """A first-run server: no admin key, the bundled model, the simulator as OpenAI."""
    running = start_console(
        tmp_path_factory.mktemp("chat"),
        gemma_gguf,
        admin_key=False,
        PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=sim.base_url,
        PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
        PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
        # Gemma loads on the first message: the bundled embedder, which nothing here
        # uses, would add tens of seconds to the start on a busy machine.
        PLUGGABLY_PRELOAD_DEFAULTS="false",
    )
    try:
        yield running
    finally:
        close_console(running)


@pytest.fixture
def person(chat_console: Console) -> str:
    """The first administrator: made through the setup link's API when the browser flow
    (the first test) has not made it already."""
    if chat_console.api("GET", "/ui/api/bootstrap").json()["setup_required"]:
        token = chat_console.setup_link().rsplit("token=", 1)[1]
        made = chat_console.api(
            "POST", "/ui/api/setup", json={"token": token, "username": PERSON, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text
    return PERSON


def _bearer(console: Console) -> str:
    answer = console.api("POST", "/v1/users/login", json={"username": PERSON, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def _answer_text(page: Any) -> str:
    text: str = page.locator(".msg.assistant .msg-text").last.inner_text()
    return text.strip()


def _wait_for(check: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _ask(page: Any, model: str, message: str, *, enter: bool = False) -> None:
    page.get_by_label("Model").select_option(model)
    page.get_by_label("Message").fill(message)
    if enter:
        page.get_by_label("Message").press("Enter")
    else:
        page.get_by_role("button", name="Send").click()


def _chat_page(console: Console, browser: Any, **size: int) -> Any:
    page = console.page(browser, user=PERSON, **size)
    page.goto("/ui/chat")
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    expect(page.get_by_label("Model")).to_have_value(GEMMA)  # the default text model
    return page


def test_a_new_person_sets_up_the_server_signs_in_and_stops_a_streamed_answer(
    browser: Any, chat_console: Console
) -> None:
    """The issue's whole first run (this test comes first in the module; the others'
    `person` fixture makes the account through the API when they run alone)."""
    assert chat_console.api("GET", "/ui/api/bootstrap").json()["setup_required"] is True
    page = chat_console.page(browser)
    page.goto(chat_console.setup_link())
    page.get_by_label("Username").fill(PERSON)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.get_by_label("Username").fill(PERSON)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Chat", exact=True).click()
    expect(page.get_by_label("Model")).to_have_value(GEMMA)

    page.get_by_text("Conversation settings").click()
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("2000")
    page.get_by_label("Message").fill(LONG_RUNNING)
    page.get_by_role("button", name="Send").click()

    first = _wait_for(lambda: len(_answer_text(page)), "the first words")
    grown = _wait_for(lambda: (n := len(_answer_text(page))) > first and n, "more words")
    assert grown > first > 0  # it streams: the answer grows while it is written
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page).to_have_url(chat_console.url("/ui/chat/") + _session_id(page))

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("status").filter(has_text="Stopped.")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    request_id = page.locator(".msg.assistant").last.get_attribute("data-request-id")
    status = chat_console.api(
        "GET", f"/v1/requests/{request_id}/status", key=_bearer(chat_console)
    ).json()
    assert status["status"] == "cancelled"
    stopped = _answer_text(page)
    time.sleep(1.0)
    assert _answer_text(page) == stopped  # nothing more came after Stop

    page.reload()
    log = page.get_by_role("log", name="Conversation")
    expect(log.locator(".msg.user .msg-text")).to_have_text([LONG_RUNNING])
    expect(log.locator(".msg.assistant")).to_have_count(1)
    assert _answer_text(page)[:20] == stopped[:20]  # the partial answer was kept
    current = page.locator("#chat-sidebar a[aria-current=page]")
    expect(current).to_have_text(LONG_RUNNING)


def _session_id(page: Any) -> str:
    path: str = page.evaluate("location.pathname")
    assert path.startswith("/ui/chat/"), path
    return path.rsplit("/", 1)[1]


def test_an_answer_is_regenerated_in_place_and_the_conversation_renamed_and_deleted(
    browser: Any, chat_console: Console, person: str
) -> None:
    page = _chat_page(chat_console, browser)
    _ask(page, SIM_MODEL, "Say something, please")
    log = page.get_by_role("log", name="Conversation")
    answers = log.locator(".msg.assistant .msg-text")
    expect(answers).to_have_text([NUMBERED])
    before = _answer_text(page)
    page.get_by_role("button", name="Regenerate").focus()  # from the keyboard
    page.keyboard.press("Enter")
    expect(log.locator(".msg.assistant")).to_have_count(1)  # the old one went
    expect(answers).to_have_text([NUMBERED])
    # Regenerate went away while the answer came: the focus is back on the message.
    expect(page.get_by_label("Message")).to_be_focused()
    after = _answer_text(page)
    assert after != before
    page.reload()
    expect(log.locator(".msg.assistant .msg-text")).to_have_text([after])
    expect(page.get_by_label("Model")).to_have_value(SIM_MODEL)  # the one that answered

    page.get_by_role("button", name="Rename Say something, please").click()
    dialog = page.get_by_role("dialog", name="Rename the conversation")
    dialog.get_by_label("Title").fill("Small talk")
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Small talk")).to_have_attribute("aria-current", "page")
    session_id = _session_id(page)
    assert (
        chat_console.api("GET", f"/v1/sessions/{session_id}", key=_bearer(chat_console)).json()[
            "title"
        ]
        == "Small talk"
    )

    delete = page.get_by_role("button", name="Delete Small talk")
    delete.click()
    page.keyboard.press("Escape")  # changed her mind: nothing is deleted, the dialog is gone
    expect(page.locator("dialog")).to_have_count(0)
    expect(delete).to_be_focused()
    delete.click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(chat_console.url("/ui/chat"))
    expect(page.get_by_role("link", name="Small talk")).to_have_count(0)
    gone = chat_console.api("GET", f"/v1/sessions/{session_id}", key=_bearer(chat_console))
    assert gone.status_code == 404


def test_the_system_prompt_is_kept_with_the_conversation_and_sent_before_each_turn(
    browser: Any, chat_console: Console, person: str, sim: OpenAISim
) -> None:
    page = _chat_page(chat_console, browser)
    page.get_by_text("Conversation settings").click()
    prompt = page.get_by_label("System prompt")
    prompt.fill("Answer like a pirate.")
    _ask(page, SIM_MODEL, "Tell me about ships")
    expect(page.get_by_role("status").filter(has_text="Answer complete.")).to_be_visible()
    sent = sim.requests_to("/v1/chat/completions")[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "Answer like a pirate."}

    prompt.fill("Answer like a poet.")
    prompt.blur()  # saved when it changes
    expect(page.get_by_role("status").filter(has_text="System prompt saved.")).to_be_visible()
    chat = chat_console.api("GET", f"/v1/sessions/{_session_id(page)}", key=_bearer(chat_console))
    assert chat.json()["system_prompt"] == "Answer like a poet."
    page.reload()
    page.get_by_text("Conversation settings").click()
    expect(page.get_by_label("System prompt")).to_have_value("Answer like a poet.")


def test_an_answer_s_markdown_runs_no_script(
    browser: Any, chat_console: Console, person: str
) -> None:
    page = _chat_page(chat_console, browser)
    _ask(page, SIM_MODEL, "Show me something hostile", enter=True)
    answer = page.get_by_role("log", name="Conversation").locator(".msg.assistant .msg-text")
    expect(answer).to_contain_text("Look:")
    page.reload()  # and once more from the stored history
    expect(answer).to_contain_text("Look:")
    assert page.evaluate("window.__xss") is None
    assert answer.locator("script, [onerror]").count() == 0
    assert answer.locator("a[href^='javascript']").count() == 0
    html = page.evaluate(
        "import('/ui/static/js/chat/markdown.js').then(m => m.markdownHtml("
        "'<img src=x onerror=alert(1)><script>alert(2)</script>[x](javascript:alert(3))'))"
    )
    assert "onerror" not in html
    assert "<script" not in html
    assert "javascript:" not in html


# An answer that would restyle the console, cover it with a fake sign-in form, and take
# the ids of the page's live regions (so that its messages land in the answer).
TAKEOVER_ANSWER = (
    "Hello <style>body { visibility: hidden }</style>"
    '<div id="status" style="position: fixed; inset: 0; background: white">Signed out.</div>'
    '<form action="/ui/api/session" method="post"><input name="password" type="password">'
    "<button>Sign in</button></form>"
)


def test_an_answer_s_markup_cannot_restyle_or_cover_the_console(
    browser: Any, chat_console: Console, person: str
) -> None:
    page = _chat_page(chat_console, browser)
    found = page.evaluate(
        """([text]) => import('/ui/static/js/chat/markdown.js').then((m) => {
            const el = document.createElement('div');
            document.getElementById('main').prepend(el);
            m.renderMarkdown(el, text);
            const status = document.getElementById('status');
            return {
                html: el.innerHTML,
                risky: el.querySelectorAll('style, form, button, [style]').length,
                statusTaken: el.contains(status),
                bodyVisible: getComputedStyle(document.body).visibility === 'visible',
            };
        })""",
        [TAKEOVER_ANSWER],
    )
    assert found["risky"] == 0, found["html"]
    assert not found["statusTaken"], found["html"]
    assert found["bodyVisible"], found["html"]
    assert "Hello" in found["html"]
    assert "Signed out." in found["html"]  # the text stays, only its power goes


def test_an_image_model_s_answer_is_a_picture_kept_with_the_conversation(
    browser: Any, chat_console: Console, person: str
) -> None:
    page = _chat_page(chat_console, browser)
    message = page.get_by_label("Message")
    message.fill("A red square")
    message.press("Shift+Enter")  # a new line, not a send
    message.press_sequentially("on white")
    assert message.input_value() == "A red square\non white"
    page.get_by_label("Model").select_option("openai:dall-e-2")
    message.press("Enter")
    image = page.get_by_role("log", name="Conversation").get_by_role("img", name="Generated image")
    expect(image).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Answer complete.")).to_be_visible()
    page.reload()  # from the session's stored artifact, through its signed link
    expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )


SHOW_MESHES = """async () => {
  const messages = await import('/ui/static/js/chat/messages.js');
  const loadedBefore = Boolean(customElements.get('model-viewer'));
  const mesh = (id, type) => ({id, type: 'mesh', url: `/v1/artifacts/${id}`, content_type: type});
  const view = new messages.AnswerView().fill({
    role: 'assistant', content: 'Here it is.', model: 'local/shap-e',
    artifacts: [mesh('a', 'model/gltf-binary'), mesh('b', 'model/obj')],
  });
  document.querySelector('[role=log]').append(view.el);
  await customElements.whenDefined('model-viewer');
  return {
    loadedBefore,
    viewers: [...view.el.querySelectorAll('model-viewer')].map(v => v.getAttribute('src')),
    downloads: [...view.el.querySelectorAll('a[download]')].map(a => a.textContent),
  };
}"""


def test_a_3d_answer_loads_the_viewer_only_when_shown_and_offers_other_formats_to_download(
    browser: Any, chat_console: Console, person: str
) -> None:
    """How a stored 3D turn is drawn (no 3D model runs in this test: the message is the
    session API's shape for a mesh answer)."""
    page = _chat_page(chat_console, browser)
    shown = page.evaluate(SHOW_MESHES)
    assert shown == {
        "loadedBefore": False,
        "viewers": ["/v1/artifacts/a"],
        "downloads": ["Download the 3D model (.glb)", "Download the 3D model (.obj)"],
    }


def test_a_second_chat_waits_in_the_bundled_model_s_queue_with_its_position(
    browser: Any, chat_console: Console, person: str
) -> None:
    token = _bearer(chat_console)
    started = threading.Event()
    stop = threading.Event()

    def occupy() -> None:
        body = {
            "model": GEMMA,
            "input": {"prompt": LONG_RUNNING},
            "parameters": {"temperature": 0, "max_tokens": 2000},
            "stream": True,
        }
        with httpx.stream(
            "POST",
            chat_console.url("/v1/generate"),
            json=body,
            headers={"X-API-Key": token},
            timeout=60,
        ) as answer:
            for line in answer.iter_lines():
                if '"content"' in line:
                    started.set()
                if stop.is_set():
                    break  # leaving the stream cancels it

    busy = threading.Thread(target=occupy)
    busy.start()
    try:
        assert started.wait(20), "the first generation did not start"
        page = _chat_page(chat_console, browser)
        _ask(page, GEMMA, "Hello there")
        status = page.get_by_role("status").filter(has_text="position")
        expect(status).to_have_text("Waiting for the model — position 1")
        page.get_by_role("button", name="Stop").click()
        expect(page.get_by_role("status").filter(has_text="Stopped.")).to_be_visible()
    finally:
        stop.set()
        busy.join(30)


def test_the_chat_page_is_accessible_and_fits_a_phone(
    browser: Any, chat_console: Console, person: str
) -> None:
    page = _chat_page(chat_console, browser)
    assert_accessible(page)  # empty
    _ask(page, SIM_MODEL, "Write some code that adds numbers")
    log = page.get_by_role("log", name="Conversation")
    expect(log.locator("pre code.hljs")).to_contain_text("def add")
    expect(page.get_by_role("status").filter(has_text="Answer complete.")).to_be_visible()
    expect(log.locator(".msg-footer")).to_contain_text("tokens")
    assert_accessible(page)
    chat_console.screenshot(page, "chat")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    toggle = page.get_by_role("button", name="Conversations")
    expect(page.get_by_role("link", name="New chat")).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="New chat")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)
