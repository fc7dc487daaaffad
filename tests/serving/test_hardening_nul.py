"""Issue #15: U+0000 in a body is refused (PostgreSQL cannot store it) however the body
is cut into pieces, and text that only looks like its escape is accepted. A raw socket
against `pluggably serve` controls how the body arrives."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.serving.test_hardening_http import read_until_closed, serving

pytestmark = pytest.mark.slow


def post_in_pieces(port: int, path: str, pieces: list[bytes]) -> tuple[int, dict[str, object]]:
    """One POST whose body is sent as ``pieces``, 0.3 s apart (the app reads each)."""
    body_length = sum(len(piece) for piece in pieces)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {ADMIN_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + pieces[0])
        for piece in pieces[1:]:
            time.sleep(0.3)
            sock.sendall(piece)
        raw = read_until_closed(sock, timeout=10)
    status_line, body = raw.split(b"\r\n\r\n", 1)
    return int(status_line.split(b" ", 2)[1]), json.loads(body)


SPLIT_NUL = [
    # The escape cut in two.
    [b'{"name": "a\\u00', b'00b"}'],
    # An escaped backslash, then the escape: the odd run of three crosses the pieces.
    [b'{"name": "a\\\\\\', b'u0000b"}'],
    # A raw NUL byte in the second piece.
    [b'{"name": "a', b'\x00b"}'],
]


@pytest.mark.parametrize("pieces", SPLIT_NUL, ids=["escape", "backslash-run", "raw"])
def test_nul_split_across_body_pieces_is_422(
    tmp_path: Path, free_port: int, database_url: str, pieces: list[bytes]
) -> None:
    with serving(tmp_path, free_port, PLUGGABLY_DATABASE_URL=database_url):
        status, body = post_in_pieces(free_port, "/v1/users/tokens", pieces)
    assert status == 422, body
    detail = body["detail"]
    assert isinstance(detail, dict)
    assert detail["code"] == "validation_error"
    assert "NUL" in str(detail["message"])


def test_an_escaped_backslash_before_u0000_is_ordinary_text(
    tmp_path: Path, free_port: int, database_url: str
) -> None:
    """The JSON text "\\\\u0000" is the six characters \\u0000, not NUL."""
    name = "\\u0000 and \\\\\\\\u0000"  # a backslash, then u0000; later, two pairs
    with serving(tmp_path, free_port, PLUGGABLY_DATABASE_URL=database_url) as base:
        admin = {"X-API-Key": ADMIN_KEY}
        created = httpx.post(f"{base}/v1/users/tokens", json={"name": name}, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == name
        # Cut between the two backslashes of the pair: still text.
        status, body = post_in_pieces(
            free_port, "/v1/users/tokens", [b'{"name": "x\\', b'\\u0000"}']
        )
        assert status == 201, body
        assert body["name"] == "x\\u0000"
