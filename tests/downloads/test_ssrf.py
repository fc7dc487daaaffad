"""SSRF and path escapes, on every route or field that takes a URL or a path.

Network rule of this file: traffic only ever goes to loopback. URLs that name another
address are first shown to be refused by the validation itself (no connection is
possible there); URLs that would connect somewhere point at ``Trap``, a loopback
server that records every hit, so "refused before connecting" is checked as "the
trap saw nothing"."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from pluggably.credentials.providers import check_endpoint
from pluggably.downloads import transfer
from pluggably.errors import BackendUnavailable, GatewayError, InvalidParameter, ValidationFailed
from pluggably.netguard import check_public_url
from pluggably.providers.upstream import Upstream
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, new_user, running
from tests.fixtures.hf_hub import FakeHub
from tests.fixtures.openai_sim import OpenAISim, make_png

ADMIN = {"X-API-Key": ADMIN_KEY}
PNG = base64.b64encode(make_png(4, 4)).decode()


class Trap:
    """Loopback HTTP server: records every request; ``/redirect?to=U`` answers 302 to U,
    anything else a small body."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                trap.hits.append(self.path)
                query = parse_qs(urlsplit(self.path).query)
                if "to" in query:
                    self.send_response(302)
                    self.send_header("Location", query["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"GGUF" + b"\0" * 60
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def process_request(self, request: Any, client_address: Any) -> None:
                trap.connections += 1  # TLS or garbage too, before any parsing
                super().process_request(request, client_address)

        self.connections = 0
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    try:
        yield server
    finally:
        server.stop()


def loopback_spellings(port: int) -> list[str]:
    """Ways to write 127.0.0.1 (the trap) that the C resolver or an IPv6 stack accept."""
    hosts = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0x7f.1",
        "017700000001",
        "localhost",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[::1]",
        "0.0.0.0",
        "0",
    ]
    return [f"http://{h}:{port}/m.gguf" for h in hosts]


# Internal addresses that no test may connect to: shown refused by validation alone.
INTERNAL = [
    "http://169.254.169.254/latest/meta-data/m.gguf",
    "http://[::ffff:169.254.169.254]/m.gguf",
    "http://[64:ff9b::a9fe:a9fe]/m.gguf",  # NAT64 of the metadata address
    "http://[2002:a9fe:a9fe::1]/m.gguf",  # 6to4 of it
    "http://[fe80::1]/m.gguf",
    "http://[fd00::1]/m.gguf",
    "http://10.0.0.8/m.gguf",
    "http://172.16.0.1/m.gguf",
    "http://192.168.1.1/m.gguf",
    "http://100.64.0.1/m.gguf",
    "http://224.0.0.1/m.gguf",
    "http://255.255.255.255/m.gguf",
]
NOT_HTTP = [
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "ftp://127.0.0.1/m.gguf",
    "gopher://127.0.0.1:70/_x",
    "dict://127.0.0.1:11211/",
    "http:///m.gguf",
    "//127.0.0.1/m.gguf",
    "http://user:secret@example.org/m.gguf",
    f"http://{'a' * 70}.example.org/m.gguf",  # a label too long for IDNA
]


async def _refused_by_netguard(url: str) -> None:
    with pytest.raises(InvalidParameter):
        await check_public_url(url, allow_private=False)


async def test_netguard_refuses_every_internal_form(trap: Trap) -> None:
    for url in [*INTERNAL, *NOT_HTTP, *loopback_spellings(trap.port)]:
        await _refused_by_netguard(url)
    for url in NOT_HTTP[:-2]:  # the operator's allowance is about addresses, not schemes
        with pytest.raises(InvalidParameter):
            await check_public_url(url, allow_private=True)
    assert trap.hits == []


# downloads


@pytest.fixture
async def hub_app(tmp_path: Path, database_url: str, hf_hub: FakeHub) -> AsyncIterator[FastAPI]:
    hf_hub.add_model("acme/tiny-GGUF", {"tiny-Q4_K_M.gguf": b"GGUF" + b"\0" * 100})
    hf_hub.add_model(
        "evil/escape-GGUF",
        {"../../escape.gguf": b"GGUF-escape", "sub/../../up.gguf": b"GGUF-up"},
    )
    settings = make_settings(tmp_path, database_url, hf_endpoint=hf_hub.url)
    async with running(create_app(settings)) as app:
        yield app


async def test_download_urls_are_refused_before_connecting(
    hub_app: FastAPI, trap: Trap, tmp_path: Path
) -> None:
    urls = [*loopback_spellings(trap.port), *INTERNAL, *NOT_HTTP]
    urls += [
        f"{trap.url}/redirect?to=http://169.254.169.254/m.gguf",
        f"http://127.0.0.1:{trap.port}/..%2f..%2fescape.gguf",
    ]
    for url in urls:
        await _refused_by_netguard(url)  # so the app call below cannot connect anywhere
    async with client_for(hub_app) as client:
        for url in urls:
            body = {"source": {"type": "url", "uri": url}}
            response = await client.post("/v1/models/download", json=body, headers=ADMIN)
            assert response.status_code == 400, (url, response.text)
            assert_envelope(response, 400, "invalid_parameter")
        assert (await client.get("/v1/jobs", headers=ADMIN)).json() == {"jobs": []}
    assert trap.hits == []


async def test_redirects_to_internal_addresses_are_not_followed(trap: Trap, tmp_path: Path) -> None:
    """The check the download manager hands ``transfer.fetch`` vets every hop: the
    first hop (the trap) answers a redirect, the target is never asked."""

    async def check(url: str) -> None:
        await check_public_url(url, allow_private=False)

    targets = [
        f"http://[::ffff:127.0.0.1]:{trap.port}/secret",
        f"http://2130706433:{trap.port}/secret",
        f"http://localhost:{trap.port}/secret",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ]
    async with httpx.AsyncClient(timeout=5) as http:
        for target in targets:
            trap.hits.clear()
            part = tmp_path / "m.gguf.part"
            with pytest.raises(InvalidParameter):
                await transfer.fetch(
                    http,
                    f"{trap.url}/redirect?to={target}",
                    part,
                    headers={},
                    expected_size=None,
                    on_bytes=lambda _n: None,
                    cancel=asyncio.Event(),
                    check_redirect=check,
                )
            assert trap.hits == [f"/redirect?to={target}"], target
            assert not part.exists() or part.read_bytes() == b""


async def test_private_downloads_mode_still_confines_schemes_and_paths(
    tmp_path: Path, database_url: str, hf_hub: FakeHub, trap: Trap
) -> None:
    """PLUGGABLY_ALLOW_PRIVATE_DOWNLOADS (simulators, LAN mirrors) allows loopback and
    private addresses, and redirects to them; never other schemes, and the file lands
    inside the models directory whatever the URL's path says."""
    settings = make_settings(
        tmp_path, database_url, hf_endpoint=hf_hub.url, allow_private_downloads=True
    )
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        for url in NOT_HTTP[:-2]:
            body = {"source": {"type": "url", "uri": url}}
            assert_envelope(
                await client.post("/v1/models/download", json=body, headers=ADMIN),
                400,
                "invalid_parameter",
            )
        assert trap.hits == []
        target = f"{trap.url}/..%2f..%2f..%2fescape.gguf"
        body = {"source": {"type": "url", "uri": f"{trap.url}/redirect?to={target}"}}
        first = await client.post("/v1/models/download", json=body, headers=ADMIN)
        # The URL's last segment must name a .gguf: this one names "redirect".
        assert_envelope(first, 400, "invalid_parameter")
        body = {"source": {"type": "url", "uri": target}}
        job = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert job.status_code == 202, job.text
        from tests.downloads.test_downloads import wait_job

        done = await wait_job(client, job.json()["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
    assert trap.hits == ["/..%2f..%2f..%2fescape.gguf"]
    assert [p for p in tmp_path.rglob("*escape*") if p.is_file()] == [
        p for p in settings.models_dir.rglob("*escape*") if p.is_file()
    ]
    written = list(settings.models_dir.rglob("*.gguf"))
    assert len(written) == 1
    assert written[0].resolve().is_relative_to(settings.models_dir.resolve())


async def test_hub_paths_revisions_and_filenames_cannot_escape(
    hub_app: FastAPI, hf_hub: FakeHub, tmp_path: Path
) -> None:
    async with client_for(hub_app) as client:

        async def download(source: dict[str, Any], model: dict[str, Any] | None = None) -> Any:
            body = {"source": {"type": "huggingface", **source}, "model": model or {}}
            return await client.post("/v1/models/download", json=body, headers=ADMIN)

        for source in (
            {"id": "acme/tiny-GGUF", "revision": "../../../api/whoami-v2"},
            {"id": "acme/tiny-GGUF", "revision": "main/../../x"},
            {"id": "acme/tiny-GGUF", "revision": "/etc/passwd"},
            {"id": "acme/.."},
            {"id": "../acme"},
            {"id": "acme/tiny-GGUF/../../x"},
            {"id": "acme/tiny-GGUF", "filename": "/etc/passwd", "revision": "a\\b"},
        ):
            assert_envelope(await download(source), 422, "validation_error")
        for model_id in ("../../etc/x", "a/../../b", "/abs/path", "..", "a/%2e%2e/b"):
            response = await download({"id": "acme/tiny-GGUF"}, {"id": model_id})
            assert_envelope(response, 422, "validation_error")
        # A file name the repo does not have is a 404; one it has, but that climbs, a 400.
        for name in ("../../etc/passwd", "%2e%2e%2fetc%2fpasswd", "tiny-Q4_K_M.gguf/../x"):
            assert_envelope(
                await download({"id": "acme/tiny-GGUF", "filename": name}), 404, "model_not_found"
            )
        for source in (
            {"id": "evil/escape-GGUF"},
            {"id": "evil/escape-GGUF", "filename": "../../escape.gguf"},
            {"id": "evil/escape-GGUF", "filename": "sub/../../up.gguf"},
        ):
            assert_envelope(await download(source), 400, "invalid_parameter")
        assert (await client.get("/v1/jobs", headers=ADMIN)).json() == {"jobs": []}
    resolves = [r.path for r in hf_hub.requests if "/resolve/" in r.path]
    assert resolves == []
    assert not list(tmp_path.rglob("*escape*"))
    assert not list(tmp_path.rglob("up.gguf"))


# provider-key endpoints (Azure): the gateway will call them


ENDPOINT_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "017700000001",
    "0",
    "0.0.0.0",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[::127.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "[fe80::1]",
    "169.254.169.254",
    "10.1.2.3",
    "192.168.0.1",
    "100.64.0.1",
    "224.0.0.1",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "metadata.google.internal",
    "printer.local",
    "x.localhost",
]


async def test_provider_key_endpoints_must_be_public_https(
    tmp_path: Path, database_url: str, trap: Trap
) -> None:
    endpoints = [f"https://{h}:{trap.port}/" for h in ENDPOINT_HOSTS]
    endpoints += [
        f"http://example.org:{trap.port}",  # not https
        "file:///etc/passwd",
        "https://user:pw@example.org",
        "https:///nohost",
        "gopher://example.org",
    ]
    for endpoint in endpoints:
        with pytest.raises(ValidationFailed):
            check_endpoint(endpoint)
    app = create_app(make_settings(tmp_path, database_url))
    async with running(app), client_for(app) as client:
        auth = await new_user(client, "keys-ssrf")
        for endpoint in endpoints:
            body = {
                "provider": "azure",
                "credential_type": "endpoint_key",
                "api_key": "azure-key-0123456789",
                "endpoint": endpoint,
            }
            response = await client.post("/v1/users/provider-keys", json=body, headers=auth)
            detail = assert_envelope(response, 422, "validation_error")
            assert detail["details"][0]["loc"] == ["body", "endpoint"], endpoint
        listing = await client.get("/v1/users/provider-keys", headers=auth)
        assert listing.json() == []
    assert trap.hits == []


def _name_for_loopback() -> str | None:
    """A host name (not 'localhost') that this machine resolves to loopback only."""
    for name in ("runsc", "vm", "ip6-localhost", socket.gethostname()):
        try:
            infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
        except OSError:
            continue
        if infos and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos):
            return name
    return None


async def test_endpoint_names_resolving_inside_are_refused_when_called(
    gen_app: FastAPI, trap: Trap
) -> None:
    """A name is only checked at store time for its spelling; what it resolves to is
    checked right before each call, so a name pointing inside never gets a connection."""
    name = _name_for_loopback()
    if name is None:
        pytest.skip("no host name here resolves to loopback only")
    async with client_for(gen_app) as client:
        auth = await new_user(client, "azure-ssrf")
        body = {
            "provider": "azure",
            "credential_type": "endpoint_key",
            "api_key": "azure-key-0123456789",
            "endpoint": f"https://{name}:{trap.port}",
        }
        stored = await client.post("/v1/users/provider-keys", json=body, headers=auth)
        assert stored.status_code == 201, stored.text
        gen = {"model": "azure:gpt-4o-mini", "input": {"prompt": "x"}, "wait": True}
        response = await client.post("/v1/generate", json=gen, headers=auth)
        detail = assert_envelope(response, 400, "invalid_parameter")
        assert "Refusing to connect" in detail["message"]
        chat = {"model": "azure:gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
        response = await client.post("/openai/v1/chat/completions", json=chat, headers=auth)
        assert response.status_code == 400, response.text
    assert trap.connections == 0


async def test_connections_for_user_endpoints_go_to_public_addresses_only(trap: Trap) -> None:
    """DNS rebinding: a name that passed the check (or resolved elsewhere when stored)
    and resolves inside when the connection is made gets no connection. The upstream
    client is driven directly, past the pre-call check, as a rebinding name would be."""
    name = _name_for_loopback()
    if name is None:
        pytest.skip("no host name here resolves to loopback only")
    client = Upstream(timeout_s=5)
    try:
        url = f"http://{name}:{trap.port}/v1/chat/completions"
        with pytest.raises(BackendUnavailable) as refused:
            await client.json(
                "POST", url, provider="azure", model="m", headers={}, body={}, public_only=True
            )
        assert refused.value.message == (
            "azure (m) is unreachable (its host does not resolve to a public address)."
        )
        assert trap.connections == 0
        # The same name through the operators' client (simulators, LAN servers) connects.
        with pytest.raises(GatewayError):
            await client.json("POST", url, provider="azure", model="m", headers={}, body={})
        assert trap.connections == 1
    finally:
        await client.aclose()


# image inputs: never fetched


@pytest.fixture
async def gen_app(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": openai_sim.base_url, "api_key": "sk-server-0000001"}},
        server_keys_allowed=["*"],
    )
    async with running(create_app(settings)) as app:
        yield app


async def test_image_urls_are_never_fetched(
    gen_app: FastAPI, trap: Trap, openai_sim: OpenAISim
) -> None:
    image_urls = [
        f"{trap.url}/cat.png",
        f"https://127.0.0.1:{trap.port}/cat.png",
        f"http://[::ffff:127.0.0.1]:{trap.port}/cat.png",
        f"{trap.url}/redirect?to=http://169.254.169.254/",
    ]
    other = ["file:///etc/passwd", f"ftp://127.0.0.1:{trap.port}/cat.png", "../../etc/passwd"]
    async with client_for(gen_app) as client:
        auth = await new_user(client, "images-ssrf")
        chat = (await client.post("/v1/sessions", json={}, headers=auth)).json()
        for url in image_urls + other:
            code = "feature_not_supported" if url in image_urls else "invalid_parameter"
            body = {"model": "openai:gpt-4o-mini", "input": {"prompt": "x", "images": [url]}}
            for path in ("/v1/generate", f"/v1/sessions/{chat['id']}/generate"):
                response = await client.post(path, json=body, headers=auth)
                assert_envelope(response, 400, code)
            content = [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": url}},
            ]
            openai = {
                "model": "openai:gpt-4o-mini",
                "messages": [{"role": "user", "content": content}],
            }
            response = await client.post("/openai/v1/chat/completions", json=openai, headers=auth)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"]["type"] == "invalid_request_error"
            anthropic = {
                "model": "openai:gpt-4o-mini",
                "max_tokens": 8,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this"},
                            {"type": "image", "source": {"type": "url", "url": url}},
                        ],
                    }
                ],
            }
            response = await client.post("/anthropic/v1/messages", json=anthropic, headers=auth)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"]["type"] == "invalid_request_error"
        # A real base64 image still goes through (the refusals above are about URLs).
        good: dict[str, Any] = {
            "model": "openai:gpt-4o-mini",
            "input": {"prompt": "x", "images": [PNG]},
            "wait": True,
        }
        assert (await client.post("/v1/generate", json=good, headers=auth)).status_code == 200
    assert trap.hits == []


# ids in paths: encoded slashes and dots


async def test_ids_in_paths_cannot_climb(gen_app: FastAPI, tmp_path: Path) -> None:
    async with client_for(gen_app) as client:
        auth = await new_user(client, "paths-ssrf")
        chat = (await client.post("/v1/sessions", json={"title": "t"}, headers=auth)).json()
        sid = chat["id"]
        # An encoded slash is a slash to the router: ids never span segments, so such a
        # path matches no route (or another route of the same object: 405), never
        # another object's route.
        cases: list[tuple[str, str, dict[str, str], int, str]] = [
            ("GET", "/v1/sessions/..%2F..%2Fv1%2Fusers%2Fme", auth, 404, "not_found"),
            ("GET", f"/v1/sessions/{sid}%2Freset", auth, 405, "method_not_allowed"),
            ("POST", f"/v1/sessions/{sid}%2F..%2F{sid}/reset", auth, 404, "not_found"),
            ("GET", "/v1/sessions/%2e%2e", auth, 404, "session_not_found"),
            ("DELETE", f"/v1/sessions/{sid}%00", auth, 422, "validation_error"),
            ("GET", "/v1/requests/..%2F..%2Fv1%2Fjobs/status", auth, 404, "not_found"),
            ("POST", "/v1/requests/%2e%2e%2f%2e%2e/cancel", auth, 404, "not_found"),
            ("GET", "/v1/requests/%2e%2e", auth, 404, "request_not_found"),
            ("DELETE", "/v1/users/tokens/..%2F..%2Finvites", auth, 404, "not_found"),
            ("DELETE", "/v1/users/tokens/%2e%2e", auth, 404, "not_found"),
            ("DELETE", "/v1/users/provider-keys/..%2Fopenai", auth, 404, "not_found"),
            ("DELETE", "/v1/users/provider-keys/%2e%2e", auth, 404, "not_found"),
            # Model ids are path-style: the whole rest is the id, looked up as such.
            ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", auth, 404, "model_not_found"),
            ("GET", "/v1/models/%2e%2e/%2e%2e/users/invites", auth, 404, "model_not_found"),
            ("GET", "/v1/models/%2e%2e%2f%2e%2e%2fstorage/status", auth, 404, "model_not_found"),
            ("GET", "/v1/schema?model=../../etc/passwd", auth, 404, "model_not_found"),
            ("GET", "/openai/v1/models/..%2F..%2Fetc%2Fpasswd", auth, 404, ""),
            ("DELETE", "/v1/models/..%2F..%2Fdata", ADMIN, 404, "model_not_found"),
            ("DELETE", "/v1/models/%2e%2e/%2e%2e/%2e%2e", ADMIN, 404, "model_not_found"),
            ("POST", "/v1/models/..%2F..%2Fetc/load", ADMIN, 404, "model_not_found"),
            ("POST", "/v1/models/%2e%2e/unload", ADMIN, 404, "model_not_found"),
            ("POST", "/v1/models/..%2Fx/default", ADMIN, 404, "model_not_found"),
            ("GET", "/v1/jobs/..%2F..%2Fstorage", ADMIN, 404, "not_found"),
            ("GET", "/v1/jobs/%2e%2e", ADMIN, 404, "job_not_found"),
            ("GET", "/v1/artifacts/%2e%2e?expires=9999999999&sig=00", {}, 403, "forbidden"),
            ("GET", "/v1/artifacts/..%2F..%2Fetc%2Fpasswd?expires=1&sig=00", {}, 404, "not_found"),
        ]
        for method, path, headers, status, code in cases:
            response = await client.request(method, path, headers=headers)
            assert response.status_code == status, (method, path, response.text)
            if code:
                assert_envelope(response, status, code)
        # The session is untouched and the data directory is whole.
        again = (await client.get(f"/v1/sessions/{sid}", headers=auth)).json()
        assert again["status"] == "active"
        assert (tmp_path / "data").is_dir()


async def test_artifact_symlink_escape_is_not_served(gen_app: FastAPI, tmp_path: Path) -> None:
    """A link planted inside the artifacts directory (a misconfigured volume, another
    process) cannot make a signed download read outside it: 404, not the file, not 500."""
    container = gen_app.state.container
    async with container.db.session() as session:
        info = await container.artifacts.save(
            session,
            owner_id=container.admin_user_id,
            data=make_png(2, 2),
            type="image",
            content_type="image/png",
        )
    root = gen_app.state.container.settings.artifacts_dir
    stored = next(p for p in root.rglob("*.png"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / stored.name).write_bytes(b"secret outside the store")
    day = stored.parent
    for p in day.iterdir():
        p.unlink()
    day.rmdir()
    day.symlink_to(outside, target_is_directory=True)
    async with client_for(gen_app) as client:
        response = await client.get(info.url)
        assert "secret outside" not in response.text
        assert_envelope(response, 404, "artifact_not_found")
