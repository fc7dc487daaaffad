"""API fuzzing (issue #9): schemathesis generates requests for every operation of the
app's OpenAPI document and sends them to a running server, authenticated as a user
(an API token made through the API) and as the admin. Every response must be a
non-5xx that the document describes: its status code, content type and body.

The server is the real app under uvicorn, in a thread of this process, its lifespan
run by ``running()``. (Not schemathesis' ASGI transport: its pytest plugin ends an
app's lifespan after every test item, and its fixture-based loader fails on pytest
9.2.) Nothing leaves the machine: every vendor points at a loopback
simulator or a dead loopback port, the Hugging Face hub is the loopback test hub,
and names other than loopback do not resolve, as on a machine without a network.
Generation is seeded and derandomized, so a failure reproduces."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from huggingface_hub import constants as hf_constants
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pluggably.app import create_app
from pluggably.config import Settings
from pluggably.providers.directory import NATIVE_BASE_URLS, VENDORS
from pluggably.serving import uvicorn_options
from tests.conftest import ADMIN_KEY, PASSWORD, make_settings, running
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.gemini_sim import GeminiSim
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # A 405 (to the OPTIONS probes) lists exactly the documented methods in `Allow`.
    allow_header_conformance,
]
# Examples per operation and identity in the fuzzing phase (schemathesis also runs
# the schema's examples and its deterministic coverage cases). Sized for CI; a deeper
# run: PLUGGABLY_TEST_FUZZ_EXAMPLES=500 PLUGGABLY_TEST_FUZZ_SEED=<n>.
MAX_EXAMPLES = int(os.environ.get("PLUGGABLY_TEST_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("PLUGGABLY_TEST_FUZZ_SEED", "9"))
# Nothing listens on the discard port: a vendor without a simulator fails at once.
DEAD_UPSTREAM = "http://127.0.0.1:9/v1"
# The upstreams the gateway talks to by default: not one may even be looked up.
DEFAULT_HOSTS = {
    host
    for url in [*(v.base_url for v in VENDORS.values()), *NATIVE_BASE_URLS.values()]
    if url and (host := urlsplit(url).hostname)
} | {"huggingface.co"}


def _without_settings_from_environment(env: pytest.MonkeyPatch) -> None:
    """What conftest's ``_clean_env`` does for each test, for module-wide setup."""
    for name in list(os.environ):
        if name.startswith("PLUGGABLY_") and not name.startswith("PLUGGABLY_TEST_"):
            env.delenv(name)


def _spec() -> dict[str, Any]:
    """The app's OpenAPI document, built without starting anything; the fixture
    checks that the running server serves this very document."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as env:
        _without_settings_from_environment(env)
        settings = make_settings(Path(tmp), f"sqlite+aiosqlite:///{tmp}/spec.db")
        return create_app(settings).openapi()


SPEC = _spec()
schema = schemathesis.openapi.from_dict(
    SPEC,
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
        }
    ),
)


@dataclass
class NetworkGuard:
    """Loopback only: other names do not resolve and other addresses are unreachable.
    What was refused is recorded."""

    refused: list[str] = field(default_factory=list)

    @staticmethod
    def loopback(host: object) -> bool:
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def install(self, env: pytest.MonkeyPatch) -> None:
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name is not None and not self.loopback(name):
                self.refused.append(str(name))
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real_getaddrinfo(host, *args, **kwargs)

        def allowed(sock: socket.socket, address: Any) -> bool:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or self.loopback(address[0]):
                return True
            self.refused.append(str(address[0]))
            return False

        def connect(sock: socket.socket, address: Any) -> None:
            if not allowed(sock, address):
                raise OSError(101, "Network is unreachable")
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            return real_connect_ex(sock, address) if allowed(sock, address) else 101

        env.setattr(socket, "getaddrinfo", getaddrinfo)
        env.setattr(socket.socket, "connect", connect)
        env.setattr(socket.socket, "connect_ex", connect_ex)


class Server:
    """The app under uvicorn in a thread, its lifespan run by ``running()``."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        # The asyncio loop (not uvloop): its sockets go through the guarded socket module.
        # The HTTP protocol the server ships with (its limits and error bodies).
        options = {**uvicorn_options(settings), "host": "127.0.0.1", "port": 0}
        config = uvicorn.Config(app, loop="asyncio", lifespan="off", **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self.ready = threading.Event()
        self.url = ""

    async def _serve(self) -> None:
        try:
            async with running(self.app):
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
                serving = asyncio.create_task(self.server.serve(sockets=[sock]))
                while not self.server.started and not serving.done():
                    await asyncio.sleep(0.01)
                self.ready.set()
                await serving
        finally:
            self.ready.set()  # a failed start is reported by __enter__ at once

    def __enter__(self) -> Server:
        self.thread.start()
        assert self.ready.wait(60), "the server did not start"
        assert self.server.started, "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the server did not stop"


@dataclass
class Gateway:
    url: str
    user: dict[str, str]
    admin: dict[str, str]


def _user_token(url: str) -> str:
    """A normal user's API token, made as a user makes one: invite, register, log in,
    create a token."""
    admin = {"X-API-Key": ADMIN_KEY}
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/openapi.json").json() == SPEC
        invite = http.post("/v1/users/invites", json={}, headers=admin)
        assert invite.status_code == 201, invite.text
        user = {"username": "fuzzer", "password": PASSWORD}
        registered = http.post(
            "/v1/users/register", json={**user, "invite_token": invite.json()["token"]}
        )
        assert registered.status_code == 201, registered.text
        login = http.post("/v1/users/login", json=user)
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['token']}"}
        token = http.post("/v1/users/tokens", json={"name": "fuzz"}, headers=bearer)
        assert token.status_code == 201, token.text
        return str(token.json()["token"])


def _hub_environment(env: pytest.MonkeyPatch, hub: FakeHub, home: Path) -> None:
    """What the ``hf_hub`` fixture does, for a module: no real token, cache or hub.
    huggingface_hub reads its telemetry switch when imported (long ago, by the app);
    with telemetry on, its first request fetches a registry of AI agents from
    $HF_ENDPOINT as it was then, whatever endpoint the caller uses."""
    env.setenv("HF_ENDPOINT", hub.url)
    env.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    env.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        env.delenv(name, raising=False)
    env.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    env.setattr(hf_constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        _without_settings_from_environment(env)
        hub = stack.enter_context(FakeHub())
        hub.add_model("fuzz/tiny-gguf", {"model.gguf": b"GGUF" + bytes(64)}, library_name="gguf")
        _hub_environment(env, hub, tmp / "hf-home")
        sims = [stack.enter_context(sim) for sim in (OpenAISim(), AnthropicSim(), GeminiSim())]
        openai, anthropic, gemini = sims
        providers: dict[str, dict[str, Any]] = {
            name: {"base_url": DEAD_UPSTREAM, "api_key": "sk-fuzz-server-0001"} for name in VENDORS
        }
        providers["openai"]["base_url"] = openai.base_url
        providers["anthropic"] = {"base_url": anthropic.url, "api_key": "sk-ant-fuzz-0001"}
        providers["google"] = {"base_url": gemini.url, "api_key": "fuzz-google-key-0001"}
        settings = make_settings(
            tmp,
            f"sqlite+aiosqlite:///{tmp / 'pluggably.db'}",
            providers=providers,
            server_keys_allowed=["*"],
            hf_endpoint=hub.url,
            log_level="warning",  # thousands of requests: one access line each otherwise
        )
        guard = NetworkGuard()
        guard.install(env)
        server = stack.enter_context(Server(create_app(settings), settings))
        yield Gateway(server.url, {"X-API-Key": _user_token(server.url)}, {"X-API-Key": ADMIN_KEY})
    for upstream in (hub, *sims):
        assert not upstream.errors, f"{type(upstream).__name__} itself failed: {upstream.errors!r}"
    defaults = sorted(set(guard.refused) & DEFAULT_HOSTS)
    assert not defaults, f"the gateway tried to reach its default upstreams: {defaults}"


@pytest.fixture(scope="module", params=["user", "admin"])
def credential(request: pytest.FixtureRequest, gateway: Gateway) -> dict[str, str]:
    return gateway.user if request.param == "user" else gateway.admin


@schema.parametrize()
def test_every_operation(
    case: schemathesis.Case, gateway: Gateway, credential: dict[str, str]
) -> None:
    case.call_and_validate(base_url=gateway.url, headers=credential, checks=CHECKS)


Step = tuple[str, str, dict[str, Any], int]
GPT = "openai:gpt-4o-mini"
TEXT = {"input": {"prompt": "Hello there"}, "parameters": {"max_tokens": 8}}


def _walk(gateway: Gateway, credential: dict[str, str], steps: list[Step]) -> list[Any]:
    """Requests built by hand (valid ones, which random data rarely is), checked like
    the generated ones, each with the status it must get."""
    responses = []
    for method, path, data, status in steps:
        case = schema[path][method].Case(**data)
        r = case.call_and_validate(base_url=gateway.url, headers=credential, checks=CHECKS)
        assert r.status_code == status, (method, path, r.text)
        responses.append(r)
    return responses


def test_generation_success_paths(gateway: Gateway, credential: dict[str, str]) -> None:
    """What random data seldom reaches: generations that succeed, over each simulated
    vendor and each surface, streamed and not, and the routes of what they create."""
    chat = {"model": GPT, "messages": [{"role": "user", "content": "Hi"}]}
    claude = {**chat, "model": "anthropic:claude-3-5-haiku-latest", "max_tokens": 16}
    steps: list[Step] = []
    for stream in (False, True):
        for model in (GPT, "anthropic:claude-3-5-haiku-latest", "google:gemini-2.0-flash"):
            steps.append(
                ("POST", "/v1/generate", {"body": {"model": model, **TEXT, "stream": stream}}, 200)
            )
        steps += [
            ("POST", "/openai/v1/chat/completions", {"body": {**chat, "stream": stream}}, 200),
            (
                "POST",
                "/openai/v1/completions",
                {"body": {"model": GPT, "prompt": "Hi", "stream": stream}},
                200,
            ),
            (
                "POST",
                "/anthropic/v1/messages",
                {"body": {**claude, "stream": stream}},
                200,
            ),
        ]
    steps += [
        (
            "POST",
            "/v1/generate",
            {"body": {"model": "openai:dall-e-2", "input": {"prompt": "a dot"}}},
            200,
        ),
        (
            "POST",
            "/openai/v1/images/generations",
            {"body": {"model": "openai:dall-e-2", "prompt": "a dot"}},
            200,
        ),
        ("GET", "/openai/v1/models/{model_id}", {"path_parameters": {"model_id": GPT}}, 200),
    ]
    first = _walk(gateway, credential, steps)[0]
    request = {"path_parameters": {"request_id": first.json()["request_id"]}}
    _walk(
        gateway,
        credential,
        [
            ("GET", "/v1/requests/{request_id}/status", request, 200),
            ("GET", "/v1/requests/{request_id}", request, 200),
            ("GET", "/v1/requests/{request_id}/events", request, 200),
            ("POST", "/v1/requests/{request_id}/cancel", request, 200),
        ],
    )


def test_session_and_account_success_paths(gateway: Gateway, credential: dict[str, str]) -> None:
    """A session through its life, and the caller's tokens and provider keys."""
    [created] = _walk(
        gateway, credential, [("POST", "/v1/sessions", {"body": {"title": "fuzz"}}, 201)]
    )
    session = {"session_id": created.json()["id"]}
    generate = {"path_parameters": session, "body": {"model": GPT, **TEXT}}
    streamed = {"path_parameters": session, "body": {"model": GPT, **TEXT, "stream": True}}
    _walk(
        gateway,
        credential,
        [
            ("POST", "/v1/sessions/{session_id}/generate", generate, 200),
            ("POST", "/v1/sessions/{session_id}/generate", streamed, 200),
            (
                "POST",
                "/v1/sessions/{session_id}/regenerate",
                {"path_parameters": session, "body": {}},
                200,
            ),
            ("GET", "/v1/sessions/{session_id}", {"path_parameters": session}, 200),
            (
                "PATCH",
                "/v1/sessions/{session_id}",
                {"path_parameters": session, "body": {"title": "renamed"}},
                200,
            ),
            (
                "PUT",
                "/v1/sessions/{session_id}",
                {"path_parameters": session, "body": {"system_prompt": "Be brief."}},
                200,
            ),
            ("POST", "/v1/sessions/{session_id}/reset", {"path_parameters": session}, 200),
            ("DELETE", "/v1/sessions/{session_id}", {"path_parameters": session}, 200),
        ],
    )
    [token] = _walk(
        gateway, credential, [("POST", "/v1/users/tokens", {"body": {"name": "brief"}}, 201)]
    )
    groq = {"provider": "groq", "api_key": "gsk_abcdefghijklmnop"}
    _walk(
        gateway,
        credential,
        [
            (
                "DELETE",
                "/v1/users/tokens/{token_id}",
                {"path_parameters": {"token_id": token.json()["info"]["id"]}},
                200,
            ),
            ("POST", "/v1/users/provider-keys", {"body": groq}, 201),
            (
                "DELETE",
                "/v1/users/provider-keys/{provider}",
                {"path_parameters": {"provider": "groq"}},
                200,
            ),
        ],
    )


def test_admin_success_paths(gateway: Gateway) -> None:
    """The admin's routes on things that exist: an invite, a downloaded model, its job."""
    admin = gateway.admin
    [invite] = _walk(gateway, admin, [("POST", "/v1/users/invites", {"body": {}}, 201)])
    source = {"type": "huggingface", "id": "fuzz/tiny-gguf", "filename": "model.gguf"}
    _, download = _walk(
        gateway,
        admin,
        [
            (
                "DELETE",
                "/v1/users/invites/{invite_id}",
                {"path_parameters": {"invite_id": invite.json()["info"]["id"]}},
                204,
            ),
            ("POST", "/v1/models/download", {"body": {"source": source}}, 202),
        ],
    )
    job = {"path_parameters": {"job_id": download.json()["job_id"]}}
    model_id = download.json()["model_id"]
    model = {"path_parameters": {"model_id": model_id}}
    # The job's event stream ends with the job: then the model is there.
    _walk(
        gateway,
        admin,
        [
            ("GET", "/v1/jobs/{job_id}/events", job, 200),
            ("GET", "/v1/jobs/{job_id}", job, 200),
            ("GET", "/v1/models/{model_id}", model, 200),
            ("GET", "/v1/models/{model_id}/status", model, 200),
            ("POST", "/v1/models/{model_id}/default", model, 200),
            ("GET", "/v1/schema", {"query": {"model": model_id}}, 200),
            ("GET", "/openai/v1/models/{model_id}", model, 200),
            ("DELETE", "/v1/models/{model_id}", model, 204),
            ("DELETE", "/v1/jobs/{job_id}", job, 200),
            ("GET", "/v1/jobs", {}, 200),
            ("GET", "/v1/storage", {}, 200),
            ("POST", "/v1/storage/cleanup", {"body": {"dry_run": True}}, 200),
            ("GET", "/metrics", {}, 200),
        ],
    )
