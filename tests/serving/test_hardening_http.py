"""Issue #15: the HTTP server's own limits, through raw sockets against `pluggably serve`
(the process as the README runs it): request heads too large or too slow (pipelined
ones counted and timed each on its own, never answered inside another's response), too
many connections in all or from one address, the open-file limit, and whose
X-Forwarded-For is believed."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.fixtures.openai_sim import OpenAISim
from tests.serving.test_serve import BIN, _env, _wait_ready, start_server, stop_server

pytestmark = pytest.mark.slow


@contextmanager
def serving(tmp_path: Path, port: int, **env: str) -> Iterator[str]:
    proc, log_path = start_server(tmp_path, port, **env)
    # Let the server forget the readiness probe's connections before counting any.
    time.sleep(0.3)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc, log_path)


def connect(port: int, source: str | None = None) -> socket.socket:
    """A connection to the server, from the loopback address ``source`` if given."""
    address = None if source is None else (source, 0)
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=address)


def read_until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    """Everything the server sends until it closes (socket.timeout if it never does)."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One response (with Content-Length) from a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"closed after {data!r}")
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail("closed mid-body")
    return int(head.split(b" ", 2)[1]), body


def next_response(reader: BinaryIO) -> tuple[int, bytes]:
    """The next response (with Content-Length) of a connection read as a file, which
    keeps what arrived beyond it (pipelined answers may come in one piece)."""
    status = int(reader.readline().split(b" ", 2)[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, reader.read(length)


def read_chunked(sock: socket.socket, data: bytes = b"") -> tuple[bytes, bytes]:
    """A chunked response (head and body, up to its last chunk; ``data`` the part of it
    already read) and what came after it."""
    while b"\r\n0\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"closed before the last chunk: {data!r}")
    response, after = data.split(b"\r\n0\r\n\r\n", 1)
    return response, after


def head_of(path: str, size: int) -> bytes:
    """A GET request head of exactly ``size`` bytes."""
    start = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".encode()
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def refusal(raw: bytes, status: int) -> dict[str, Any]:
    """The error envelope's detail of a raw response, which must have ``status``."""
    head, body = raw.split(b"\r\n\r\n", 1)
    assert int(head.split(b" ", 2)[1]) == status, raw[:300]
    detail: dict[str, Any] = json.loads(body)["detail"]
    return detail


GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
GET_HEALTH_AND_CLOSE = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def test_request_head_over_the_limit_is_431_and_the_connection_closed(
    tmp_path: Path, free_port: int
) -> None:
    with serving(tmp_path, free_port) as base, connect(free_port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        detail = refusal(read_until_closed(sock), 431)
        assert detail["code"] == "request_header_too_large"
        assert "65536 bytes" in detail["message"]
        # Under the limit is served as before.
        assert httpx.get(f"{base}/health", headers={"X-Big": "a" * 30_000}).status_code == 200


def test_a_malformed_head_is_400_in_the_error_envelope(tmp_path: Path, free_port: int) -> None:
    with serving(tmp_path, free_port), connect(free_port) as sock:
        sock.sendall(b'DELETE /health HTTP/1.1\r\nHost: x\r\nContent-Length: HMm(["\r\n\r\n')
        raw = read_until_closed(sock)
        assert b"\r\ncontent-type: application/json\r\n" in raw
        detail = refusal(raw, 400)
        assert detail["code"] == "invalid_request"
        assert detail["message"].startswith("Malformed HTTP request: ")


def test_request_head_sent_too_slowly_is_408_and_a_silent_connection_is_closed(
    tmp_path: Path, free_port: int
) -> None:
    with serving(tmp_path, free_port, PLUGGABLY_HEADER_READ_TIMEOUT_S="1"):
        with connect(free_port) as sock:
            started = time.monotonic()
            for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n":
                sock.sendall(bytes([byte]))  # one byte every 0.1 s: 5 s for the head
                if select.select([sock], [], [], 0.1)[0]:
                    break  # answered
            detail = refusal(read_until_closed(sock), 408)
            assert detail["code"] == "request_timeout"
            assert time.monotonic() - started < 3
        with connect(free_port) as silent:
            started = time.monotonic()
            assert read_until_closed(silent) == b""
            assert time.monotonic() - started < 3


def test_the_head_timeout_spares_keep_alive_idling_and_slow_bodies(
    tmp_path: Path, free_port: int
) -> None:
    """Only heads are timed: a connection idle between requests (uvicorn's keep-alive
    timeout, 5 s, governs it) and a body that trickles in are not cut."""
    with (
        serving(tmp_path, free_port, PLUGGABLY_HEADER_READ_TIMEOUT_S="1"),
        connect(free_port) as sock,
    ):
        sock.sendall(GET_HEALTH)
        assert read_response(sock)[0] == 200
        time.sleep(2)
        sock.sendall(GET_HEALTH)
        assert read_response(sock)[0] == 200
        body = b'{"username": "nobody", "password": "not-the-password"}'
        sock.sendall(
            b"POST /v1/users/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        for at in range(0, len(body), 8):  # 7 pieces, 0.3 s apart
            sock.sendall(body[at : at + 8])
            time.sleep(0.3)
        assert read_response(sock)[0] == 401


def test_connections_beyond_the_cap_are_refused_and_others_served_after(
    tmp_path: Path, free_port: int
) -> None:
    with serving(tmp_path, free_port, PLUGGABLY_MAX_CONNECTIONS="4") as base:
        held = [connect(free_port) for _ in range(4)]
        try:
            for sock in held:  # each in keep-alive after one answer
                sock.sendall(GET_HEALTH)
                assert read_response(sock)[0] == 200
            with connect(free_port) as extra:
                extra.sendall(
                    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                raw = read_until_closed(extra)
            detail = refusal(raw, 503)
            assert detail["code"] == "too_many_connections"
            assert detail["retry_after"] == 1
            assert b"\r\nretry-after: 1\r\n" in raw.split(b"\r\n\r\n")[0] + b"\r\n"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{base}/health").status_code != 200:
            assert time.monotonic() < deadline, "the server did not take connections again"
            time.sleep(0.05)


def test_connections_from_one_address_beyond_its_cap_are_refused_and_others_served(
    tmp_path: Path, free_port: int
) -> None:
    """One client cannot take every connection: past max_connections_per_address its
    next is refused, while another address, and a trusted proxy (every client behind it
    comes from its address), still connect."""
    with serving(
        tmp_path,
        free_port,
        PLUGGABLY_MAX_CONNECTIONS_PER_ADDRESS="3",
        PLUGGABLY_TRUSTED_PROXIES='["127.0.0.3"]',
    ):
        mine = [connect(free_port) for _ in range(3)]
        proxied = [connect(free_port, "127.0.0.3") for _ in range(4)]
        try:
            for sock in mine + proxied:
                sock.sendall(GET_HEALTH)
                assert read_response(sock)[0] == 200
            with connect(free_port) as extra:
                extra.sendall(GET_HEALTH_AND_CLOSE)
                raw = read_until_closed(extra)
            detail = refusal(raw, 503)
            assert detail["code"] == "too_many_connections"
            assert detail["message"].startswith("This address has too many open connections")
            assert detail["retry_after"] == 1
            assert b"\r\nretry-after: 1\r\n" in raw
            with connect(free_port, "127.0.0.2") as other:
                other.sendall(GET_HEALTH_AND_CLOSE)
                assert status_of(read_until_closed(other)) == 200
            for sock in mine:
                sock.close()
            # Closed connections are no longer counted against the address.
            deadline = time.monotonic() + 5
            while True:
                with connect(free_port) as again:
                    again.sendall(GET_HEALTH_AND_CLOSE)
                    if status_of(read_until_closed(again)) == 200:
                        break
                assert time.monotonic() < deadline, "the address stayed refused"
                time.sleep(0.05)
        finally:
            for sock in mine + proxied:
                sock.close()


def test_pipelined_heads_are_each_held_to_the_limit_not_their_sum(
    tmp_path: Path, free_port: int
) -> None:
    """Several requests in one read: each head is under the limit though together they
    are over it (both served); a later head over it is 431, after the answers before it."""
    with (
        serving(tmp_path, free_port, PLUGGABLY_MAX_REQUEST_HEADER_BYTES="1024"),
        connect(free_port) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(head_of("/health", 640) + head_of("/health", 640))
        assert next_response(reader)[0] == 200
        assert next_response(reader)[0] == 200
        sock.sendall(head_of("/health", 640) + head_of("/health", 1500))
        assert next_response(reader)[0] == 200
        status, body = next_response(reader)
        assert status == 431
        assert json.loads(body)["detail"]["code"] == "request_header_too_large"
        assert reader.read() == b""  # and closed


def test_a_head_pipelined_after_a_body_is_held_to_the_limit(tmp_path: Path, free_port: int) -> None:
    """The body's end and the next head in one read: the head is counted from its own
    first byte (not skipped as part of the piece that carried the body)."""
    with (
        serving(tmp_path, free_port, PLUGGABLY_MAX_REQUEST_HEADER_BYTES="1024"),
        connect(free_port) as sock,
    ):
        body = b'{"username": "nobody", "password": "not-the-password"}'
        sock.sendall(
            b"POST /v1/users/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        time.sleep(0.2)  # the head alone, then the body and the next head together
        sock.sendall(body + head_of("/health", 900) + head_of("/health", 1500))
        with sock.makefile("rb") as reader:
            assert next_response(reader)[0] == 401
            assert next_response(reader)[0] == 200
            status, answer = next_response(reader)
            assert status == 431
            assert json.loads(answer)["detail"]["code"] == "request_header_too_large"


@pytest.mark.parametrize(
    ("next_head", "then"),
    [
        pytest.param(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", 408, id="unfinished"),
        pytest.param(b"\x00 not HTTP\r\n\r\n", None, id="malformed"),
    ],
)
def test_a_head_begun_during_a_streamed_answer_is_answered_only_after_it(
    tmp_path: Path, free_port: int, openai_sim: OpenAISim, next_head: bytes, then: int | None
) -> None:
    """The next request's head, sent while an SSE answer streams for longer than the
    head timeout: the stream ends whole; then an unfinished head has its own time (408),
    and a malformed one just closes the connection."""
    openai_sim.token_delay_s = 0.3
    openai_sim.set_reply("gpt-4o-mini", "one two three four five six seven eight")
    body = json.dumps(
        {"model": "openai:gpt-4o-mini", "input": {"prompt": "count"}, "stream": True}
    ).encode()
    with (
        serving(
            tmp_path,
            free_port,
            PLUGGABLY_HEADER_READ_TIMEOUT_S="1",
            PLUGGABLY_PROVIDERS__OPENAI__BASE_URL=openai_sim.base_url,
            PLUGGABLY_PROVIDERS__OPENAI__API_KEY="sk-server-key-0001",
            PLUGGABLY_SERVER_KEYS_ALLOWED='["@admins"]',
        ),
        connect(free_port) as sock,
    ):
        sock.sendall(
            b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-API-Key: " + ADMIN_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        started = time.monotonic()
        opened = sock.recv(65536)  # the answer has begun: the next head comes on its own
        sock.sendall(next_head)
        stream, after = read_chunked(sock, opened)
        assert time.monotonic() - started > 1.5  # longer than the head timeout
        assert stream.startswith(b"HTTP/1.1 200 ")
        assert b"HTTP/1.1 4" not in stream
        assert b"eight" in stream
        after += read_until_closed(sock)
        if then is None:
            assert after == b""
        else:
            assert refusal(after, then)["code"] == "request_timeout"


def test_the_open_file_limit_is_raised_and_the_connection_cap_fits_under_it(
    tmp_path: Path, free_port: int
) -> None:
    """Started with the common soft limit below the hard one: the server raises the
    soft limit, and lowers max_connections to leave descriptors for everything else."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["prlimit", "--nofile=512:1024", str(BIN), "serve", "--port", str(free_port)],
            env=_env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{free_port}", proc, log_path)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        files = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert files.split()[3:5] == ["1024", "1024"]
    finally:
        output = stop_server(proc, log_path)
    lowered = next(
        json.loads(line) for line in output.splitlines() if "max_connections_lowered" in line
    )
    assert lowered["effective"] == (1024 - 256) // 2
    assert lowered["configured"] == 2048


def _failed_logins(base: str, forwarded_for: list[str]) -> list[int]:
    return [
        httpx.post(
            f"{base}/v1/users/login",
            json={"username": f"nobody-{i}", "password": "not-the-password"},
            headers={"X-Forwarded-For": address},
        ).status_code
        for i, address in enumerate(forwarded_for)
    ]


def test_x_forwarded_for_from_loopback_is_ignored_by_default(
    tmp_path: Path, free_port: int
) -> None:
    """Login throttling per address sees the peer: three addresses named in
    X-Forwarded-For are one client (127.0.0.1), refused after two failures."""
    with serving(tmp_path, free_port, PLUGGABLY_LOGIN_MAX_FAILURES_PER_ADDRESS="2") as base:
        addresses = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        assert _failed_logins(base, addresses) == [401, 401, 429]


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
    tmp_path: Path, free_port: int
) -> None:
    with serving(
        tmp_path,
        free_port,
        PLUGGABLY_LOGIN_MAX_FAILURES_PER_ADDRESS="2",
        PLUGGABLY_TRUSTED_PROXIES='["127.0.0.1"]',
    ) as base:
        assert _failed_logins(base, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [401] * 3
        assert _failed_logins(base, ["198.51.100.9"] * 3) == [401, 401, 429]


def test_local_only_does_not_grant_admin_to_a_forwarded_request(
    tmp_path: Path, free_port: int
) -> None:
    """Now that a loopback proxy's X-Forwarded-For is ignored by default, the request
    it forwards still comes from 127.0.0.1: it must not pass for a local caller."""
    with serving(tmp_path, free_port, PLUGGABLY_LOCAL_ONLY="true") as base:
        assert httpx.get(f"{base}/v1/users/me").status_code == 200
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            forwarded = httpx.get(f"{base}/v1/users/me", headers={header: "203.0.113.7"})
            assert forwarded.status_code == 401, header
        # An API key still works through a proxy.
        keyed = {"X-Forwarded-For": "203.0.113.7", "X-API-Key": ADMIN_KEY}
        assert httpx.get(f"{base}/v1/users/me", headers=keyed).status_code == 200
