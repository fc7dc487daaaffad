"""The deployment of deploy/ (docs/runbook.md) on this machine, without containers:
Debian's nginx running deploy/nginx.conf in front of two ``pluggably serve`` replicas
on one PostgreSQL. Clients only ever talk to nginx: they can sign in, streams reach
them live, requests are spread over both replicas, the replicas see each client's own
address, and a stopped replica costs no client an error."""

from __future__ import annotations

import grp
import ipaddress
import itertools
import json
import os
import pwd
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from pluggably.config import Settings
from tests.cluster.harness import ADMIN, Replica, fresh_database, start_replica
from tests.conftest import PASSWORD, unused_port
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import OpenAISim

pytestmark = pytest.mark.slow

NGINX = Path("/usr/sbin/nginx")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEPLOY_CONF = DEPLOY / "nginx.conf"
MODEL = "sim:gpt-4o-mini"
WORDS = 40
LONG = " ".join(f"w{i}" for i in range(WORDS))

# The http {} block that the nginx image gives deploy/nginx.conf, with every path that
# Debian's build would otherwise place under /var inside the test's directory.
MAIN_CONF = """\
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {include};
}}
"""

_UPSTREAM_SERVER = re.compile(r"^( *)server (\S+)( [^;]*)?;[^\n]*\n", re.MULTILINE)
_LISTEN = re.compile(r"^( *)listen \S+;", re.MULTILINE)


def render_nginx_conf(conf: str, upstreams: list[str], listen: str) -> str:
    """``conf`` (deploy/nginx.conf) with its upstream's ``server`` lines replaced by
    ``upstreams`` (same parameters) and its ``listen`` address by ``listen``: the rest
    of the text runs unchanged."""
    servers = list(_UPSTREAM_SERVER.finditer(conf))
    assert servers, "deploy/nginx.conf has no upstream server lines"
    indent, _, parameters = servers[0].groups()
    assert {m.group(3) for m in servers} == {parameters}, "upstream servers differ"
    lines = "".join(f"{indent}server {address}{parameters or ''};\n" for address in upstreams)
    rendered = conf[: servers[0].start()] + lines + conf[servers[-1].end() :]
    rendered, listens = _LISTEN.subn(lambda m: f"{m.group(1)}listen {listen};", rendered)
    assert listens == 1, "deploy/nginx.conf should listen once"
    return rendered


def _nginx_command(root: Path, include: Path, *options: str) -> list[str]:
    """nginx in the foreground with its files under ``root``, serving ``include``
    inside MAIN_CONF."""
    main_conf = root / "nginx.conf"
    main_conf.write_text(MAIN_CONF.format(root=root, include=include))
    directives = f"daemon off; pid {root}/nginx.pid; {_as_current_user()}"
    binary = str(_nginx_binary())
    return [
        binary,
        "-p",
        str(root),
        "-e",
        str(root / "error.log"),
        "-c",
        str(main_conf),
        "-g",
        directives,
        *options,
    ]


def _nginx_binary() -> Path:
    if NGINX.exists():
        return NGINX
    if os.environ.get("PLUGGABLY_TEST_REQUIRE_POSTGRES") == "1":
        raise RuntimeError(
            f"{NGINX} is missing: CI runs the deployment test (apt-get install nginx)"
        )
    pytest.skip(f"{NGINX} is not installed: the deployment test needs Debian's nginx")


def _as_current_user() -> str:
    # Run as root, nginx would switch its workers to 'nobody', who cannot enter the
    # test's private temporary directory.
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid())
    return f"user {user.pw_name} {grp.getgrgid(user.pw_gid).gr_name}; "


@contextmanager
def nginx(root: Path, replicas: list[Replica]) -> Iterator[str]:
    """nginx (deploy/nginx.conf) in front of ``replicas``, its files under ``root``;
    yields its base URL once it answers."""
    root.mkdir()
    port = unused_port()
    conf = render_nginx_conf(
        DEPLOY_CONF.read_text(), [f"127.0.0.1:{r.port}" for r in replicas], f"127.0.0.1:{port}"
    )
    (root / "pluggably.conf").write_text(conf)
    log_path = root / "nginx.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _nginx_command(root, root / "pluggably.conf"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, log_path.read_text() + _read(root / "error.log")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Topology:
    base: str  # nginx
    replicas: list[Replica]

    def client(
        self, address: str = "127.0.0.1", headers: dict[str, str] | None = None
    ) -> httpx.Client:
        """A client of nginx connecting from ``address`` (any 127/8 address is this
        machine), as if it were another computer."""
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=self.base, timeout=30, transport=transport, headers=headers)

    def served_by(self, request_id: str, timeout: float = 5) -> Replica:
        """The replica that logged the request ``request_id`` (the line follows the
        answer by a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                replica
                for replica in self.replicas
                if any(
                    line.get("request_id") == request_id for line in replica.log_events("request")
                )
            ]
            if found:
                assert len(found) == 1, f"{request_id} was served twice"
                return found[0]
            assert time.monotonic() < deadline, f"no replica logged {request_id}"
            time.sleep(0.05)


def _interpolated(value: str) -> str:
    """A compose value with its ${VAR:-default} and ${VAR:?error} filled in."""

    def fill(match: re.Match[str]) -> str:
        return match.group(2) if match.group(1) == "-" else "0123456789abcdef"

    return re.sub(r"\$\{\w+:([-?])([^}]*)\}", fill, value)


def test_compose_and_nginx_conf_agree_on_addresses_and_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the containers cannot show here: deploy/nginx.conf, verbatim, is valid,
    sends to the replicas of compose.yaml, and is the proxy the replicas trust; the
    replicas' environment is valid settings."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    address = {
        name: s["networks"]["backend"]["ipv4_address"]
        for name, s in services.items()
        if isinstance(s.get("networks"), dict)
    }
    replicas = sorted(name for name in services if name.startswith("pluggably-"))
    assert replicas == ["pluggably-a", "pluggably-b"]
    conf = DEPLOY_CONF.read_text()
    port = services["pluggably-a"]["environment"]["PLUGGABLY_PORT"]
    upstreams = [m.group(2) for m in _UPSTREAM_SERVER.finditer(conf)]
    assert upstreams == [f"{address[name]}:{port}" for name in replicas]
    for name in replicas:
        assert services[name]["environment"] == services["migrate"]["environment"]
        assert "/ready" in services[name]["healthcheck"]["test"][-1]
    for key, value in services["pluggably-a"]["environment"].items():
        monkeypatch.setenv(key, _interpolated(value))
    settings = Settings()
    assert [str(proxy) for proxy in settings.trusted_proxies] == [f"{address['nginx']}/32"]
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://pluggably:")
    assert settings.artifacts_backend == "s3"
    assert settings.artifacts_s3 is not None
    assert settings.artifacts_s3.endpoint_url == "http://minio:9000"
    init = services["minio-init"]["command"][0]  # makes the bucket and the replicas' user
    assert f"mc mb --ignore-existing store/{settings.artifacts_s3.bucket}\n" in init
    assert f"mc admin user add store {settings.artifacts_s3.access_key_id} " in init
    ipam = compose["networks"]["backend"]["ipam"]["config"][0]
    dynamic = ipaddress.ip_network(ipam["ip_range"])
    for fixed in address.values():
        assert ipaddress.ip_address(fixed) in ipaddress.ip_network(ipam["subnet"])
        assert ipaddress.ip_address(fixed) not in dynamic
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["nginx"]["volumes"]
    body = Settings.model_fields["max_body_bytes"].default
    assert f"client_max_body_size {body // 2**20}m;" in conf
    checked = subprocess.run(
        _nginx_command(tmp_path, DEPLOY_CONF, "-t"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.fixture(scope="module")
def sim() -> Iterator[OpenAISim]:
    with serving(OpenAISim(), "the OpenAI simulator") as started:
        yield started


@pytest.fixture(scope="module")
def topology(sim: OpenAISim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    root = tmp_path_factory.mktemp("topology")
    endpoints = {
        "sim": {"base_url": sim.base_url, "api_key": "sk-sim-1", "models": ["gpt-4o-mini"]}
    }
    env = {
        "PLUGGABLY_ENDPOINTS": json.dumps(endpoints),
        "PLUGGABLY_TRUSTED_PROXIES": '["127.0.0.1"]',  # nginx connects from there
        # One failed login per account and client address: the test of addresses below.
        "PLUGGABLY_LOGIN_MAX_FAILURES": "1",
    }
    started: list[Replica] = []
    with fresh_database() as url:
        try:
            for name in ("A", "B"):
                started.append(start_replica(root, name, url, **env))
            with nginx(root / "nginx", started) as base:
                yield Topology(base, started)
        finally:
            for replica in started:
                replica.stop()


@pytest.fixture(autouse=True)
def _calm(sim: OpenAISim) -> Iterator[None]:
    sim.set_reply("gpt-4o-mini", None)
    sim.token_delay_s = 0.0
    yield
    sim.token_delay_s = 0.0


def person(topology: Topology, name: str) -> dict[str, str]:
    """A person invited, registered and signed in, all through nginx."""
    with topology.client() as client:
        invite = client.post("/v1/users/invites", json={}, headers=ADMIN).json()["token"]
        body = {"username": name, "password": PASSWORD, "invite_token": invite}
        assert client.post("/v1/users/register", json=body).status_code == 201
        login = client.post("/v1/users/login", json={"username": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['token']}"}


def test_a_stream_through_nginx_arrives_live_and_requests_go_to_both_replicas(
    topology: Topology, sim: OpenAISim
) -> None:
    who = person(topology, "streamer")
    sim.set_reply("gpt-4o-mini", LONG)
    sim.token_delay_s = 0.05  # 2 s for the whole answer
    arrivals: list[tuple[float, str]] = []
    body = {"model": MODEL, "stream": True, "input": {"prompt": "go"}}
    with (
        topology.client(headers=who) as client,
        client.stream("POST", "/v1/generate", json=body) as answer,
    ):
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                frame = json.loads(line.removeprefix("data: "))
                if "choices" in frame:
                    delta = frame["choices"][0]["delta"].get("content", "")
                    arrivals.append((time.monotonic(), delta))
    assert "".join(delta for _, delta in arrivals) == LONG
    # Each delta as it was produced, not held in nginx until a buffer filled: most
    # arrived on their own, a token delay after the one before.
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals)]
    assert sum(gap > 0.02 for gap in gaps) >= WORDS // 2, gaps
    assert arrivals[-1][0] - arrivals[0][0] > 1.0

    sim.set_reply("gpt-4o-mini", None)  # the echo again
    sim.token_delay_s = 0.0
    served: dict[str, int] = {}
    with topology.client(headers=who) as client:
        for turn in range(8):
            rid = f"spread-{turn}"
            body = {"model": MODEL, "input": {"prompt": f"turn {turn}"}}
            answer = client.post("/v1/generate", json=body, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            assert answer.json()["output"]["text"] == f"Echo: turn {turn}"
            name = topology.served_by(rid).name
            served[name] = served.get(name, 0) + 1
    # least_conn: with none open, requests take turns.
    assert served == {"A": 4, "B": 4}


def test_the_replicas_count_failed_logins_together_by_the_address_nginx_forwards(
    topology: Topology,
) -> None:
    person(topology, "owner")
    wrong = {"username": "owner", "password": "not-the-password"}
    # A guesser at 127.0.0.2: one failure, then refused (429) by both replicas alike:
    # the replicas share what they count (cluster/throttle_share.py).
    answers: list[tuple[str, int]] = []
    with topology.client("127.0.0.2") as guesser:
        for attempt in range(12):
            if {name for name, _ in answers[1:]} == {"A", "B"}:
                break
            rid = f"guess-{attempt}"
            status = guesser.post("/v1/users/login", json=wrong, headers={"X-Request-ID": rid})
            answers.append((topology.served_by(rid).name, status.status_code))
            time.sleep(0.05)  # the fact of a failure travels between replicas meanwhile
    assert answers[0][1] == 401
    assert {status for _, status in answers[1:]} == {429}
    assert {name for name, _ in answers[1:]} == {"A", "B"}
    # The owner at 127.0.0.3 is not refused on either replica: they count the
    # addresses nginx forwarded, not nginx's own (which every request shares).
    right = {"username": "owner", "password": PASSWORD}
    replicas = set()
    with topology.client("127.0.0.3") as owner:
        for attempt in range(4):
            rid = f"owner-{attempt}"
            login = owner.post("/v1/users/login", json=right, headers={"X-Request-ID": rid})
            assert login.status_code == 200, login.text
            replicas.add(topology.served_by(rid).name)
    assert replicas == {"A", "B"}


# Last in the file (pytest keeps that order): it stops replica B for good.
def test_requests_after_a_replica_stops_all_succeed_on_the_other(topology: Topology) -> None:
    who = person(topology, "steady")
    a, b = topology.replicas
    b.stop()
    assert b.proc.returncode == 0
    with topology.client(headers=who) as client:
        for turn in range(6):
            rid = f"after-stop-{turn}"
            # POSTs too: one that nginx could not send to B goes to A.
            body = {"model": MODEL, "input": {"prompt": f"turn {turn}"}}
            answer = client.post("/v1/generate", json=body, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            assert topology.served_by(rid) is a
            me = client.get("/v1/users/me")
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "steady"
