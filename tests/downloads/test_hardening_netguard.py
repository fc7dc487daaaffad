"""Outbound connections to URLs users name (issue #15): a refusal never says what an
inside host name resolves to, and URL downloads connect only to the public addresses
the name resolves to as the connection is made (DNS rebinding).

Name resolution is the seam: ``socket.getaddrinfo`` (which the pre-connection check,
aiohttp's resolver and anyio's connector all go through) answers chosen addresses for
a few made-up names and asks the real resolver about every other. No test traffic
leaves loopback: the only address a connection could reach is the ``Trap``."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, new_user, running
from tests.downloads.test_downloads import wait_job
from tests.downloads.test_ssrf import Trap, trap  # noqa: F401  (the fixture)
from tests.fixtures.openai_sim import OpenAISim

ADMIN = {"X-API-Key": ADMIN_KEY}
INSIDE = ["10.1.2.3", "fd00::5"]  # what intranet.example.com resolves to
PUBLIC = "93.184.216.34"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], list[str]]]:
    """Made-up names: name -> a function giving the addresses of the next lookup."""
    answers: dict[str, Callable[[], list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        if not (addresses := answers[name]()):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        port = int(port or 0)
        infos: list[Any] = []
        for address in addresses:
            if ipaddress.ip_address(address).version == 6:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"base_url": openai_sim.base_url, "api_key": "sk-server-0000001"}},
    )
    async with running(create_app(settings)) as application:
        yield application


async def test_refusals_do_not_say_what_inside_names_resolve_to(
    app: FastAPI, dns: dict[str, Callable[[], list[str]]]
) -> None:
    dns["intranet.example.com"] = lambda: INSIDE
    async with client_for(app) as client:
        auth = await new_user(client, "prober")
        key = {
            "provider": "azure",
            "credential_type": "endpoint_key",
            "api_key": "azure-key-0123456789",
            "endpoint": "https://intranet.example.com",
        }
        stored = await client.post("/v1/users/provider-keys", json=key, headers=auth)
        assert stored.status_code == 201, stored.text
        native = {"model": "azure:gpt-4o-mini", "input": {"prompt": "x"}, "wait": True}
        refused = await client.post("/v1/generate", json=native, headers=auth)
        detail = assert_envelope(refused, 400, "invalid_parameter")
        assert detail["message"] == (
            "Refusing to connect to intranet.example.com: it does not resolve to a public address "
            "(loopback, private and link-local addresses are not allowed)."
        )
        chat = {"model": "azure:gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
        compat = await client.post("/openai/v1/chat/completions", json=chat, headers=auth)
        assert compat.status_code == 400, compat.text
        body = {"source": {"type": "url", "uri": "http://intranet.example.com/m.gguf"}}
        download = await client.post("/v1/models/download", json=body, headers=ADMIN)
        said = assert_envelope(download, 400, "invalid_parameter")["message"]
        assert "does not resolve to a public address" in said
        for response in (refused, compat, download):
            assert not any(address in response.text for address in INSIDE), response.text


async def test_an_inside_name_and_a_name_that_does_not_resolve_are_refused_alike(
    app: FastAPI, dns: dict[str, Callable[[], list[str]]]
) -> None:
    """Otherwise the refusal is an oracle for which inside names exist."""
    dns["intranet.example.com"] = lambda: INSIDE
    dns["nowhere.example.com"] = lambda: []  # resolves to nothing, like NXDOMAIN

    def answer(refused: Any) -> str:
        return str(assert_envelope(refused, 400, "invalid_parameter")["message"])

    async with client_for(app) as client:
        said: dict[str, list[str]] = {}
        for host in ("intranet.example.com", "nowhere.example.com"):
            uri = f"http://{host}/m.gguf"
            download = {"source": {"type": "url", "uri": uri}}
            refused = await client.post("/v1/models/download", json=download, headers=ADMIN)
            said[host] = [answer(refused).replace(host, "HOST")]
        assert said["intranet.example.com"] == said["nowhere.example.com"]


async def test_url_downloads_connect_only_to_public_addresses_at_connection_time(
    app: FastAPI,
    dns: dict[str, Callable[[], list[str]]],
    trap: Trap,  # noqa: F811
) -> None:
    """The name is public when the download is planned and loopback (the trap) when the
    file is fetched: no connection is made, and the job fails saying why."""
    lookups: list[str] = []

    def rebinding() -> list[str]:
        lookups.append("rebind")
        return [PUBLIC] if len(lookups) == 1 else ["127.0.0.1"]

    dns["rebind.example.com"] = rebinding
    async with client_for(app) as client:
        body = {"source": {"type": "url", "uri": f"http://rebind.example.com:{trap.port}/m.gguf"}}
        job = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert job.status_code == 202, job.text
        done = await wait_job(client, job.json()["job_id"], "completed", "failed")
    assert trap.connections == 0
    assert done["status"] == "failed", done
    assert done["error_code"] == "invalid_parameter"
    assert done["error"] == (
        "Refusing to download from rebind.example.com: it does not resolve to a public address "
        "(see PLUGGABLY_ALLOW_PRIVATE_DOWNLOADS)."
    )
    assert len(lookups) >= 2  # planned, then connected
