"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with the limits it
lacks. httptools buffers a request head of any size, and uvicorn waits forever for
one that never ends, so a few slow or huge heads could hold the server's memory or
every file descriptor it may open.

- a request head (request line and headers) larger than ``max_head_bytes`` is
  answered 431 and the connection closed. Each head is counted from its own first
  byte, so requests pipelined in one read are held to the limit one by one;
- a head not complete within ``head_timeout_s`` of its first byte (of the
  connection's opening, for the first request) closes the connection, with 408 when
  some of it had arrived; idle keep-alive connections stay uvicorn's
  ``timeout_keep_alive``, and bodies and streamed answers are not timed here;
- connections beyond ``max_connections``, or beyond ``max_per_address`` from one
  client address, are answered 503 and closed as they are accepted, so the process
  keeps file descriptors for its database and models and one client cannot take them
  all.

A refusal never lands inside another response: a head refused while an earlier
request's answer is still being written (pipelining, or the next request begun during
a stream) is answered once that answer is complete, and a head begun then is timed
from then. A refused connection is closed gracefully: the answer, then our end of the
stream, then whatever the client still sends is read and dropped for a moment. Closing
at once with unread input would reset the connection, and the client would lose the
answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pluggably.api.errors import envelope
from pluggably.auth.throttle import client_key

# How long a refused connection's late input is drained before the socket closes.
LINGER_S = 1.0
# What a client refused for too many connections is told to wait.
CONNECTIONS_RETRY_AFTER_S = 1
# The end of a request head: its last line's last character, then the empty line.
# httptools accepts no other line ending; a blank line before the request line (which it
# skips) has no such character and is not taken for an end.
_HEAD_END = re.compile(rb"[^\r\n]\r\n\r\n")
_HEAD_END_CONTEXT = 4  # bytes of an unfinished head kept to find an end split across reads

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int
    head_timeout_s: float
    max_connections: int
    max_per_address: int
    # Peers exempt from ``max_per_address``: every client behind a proxy comes from it.
    uncapped: tuple[Network, ...] = ()


def _envelope(
    status: int, reason: str, code: str, message: str, retry_after: int | None = None
) -> bytes:
    """A complete response in the API's error envelope, closing the connection."""
    request_id = uuid.uuid4().hex
    body = json.dumps(
        envelope(code, message, request_id=request_id, retry_after=retry_after)
    ).encode()
    retry = "" if retry_after is None else f"retry-after: {retry_after}\r\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        f"{retry}connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _too_many_connections(whose: str) -> bytes:
    return _envelope(
        503,
        "Service Unavailable",
        "too_many_connections",
        f"{whose} too many open connections; close some or retry shortly.",
        CONNECTIONS_RETRY_AFTER_S,
    )


def _is_uncapped(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The body's declared length; 0 when chunked (its end is found by the parser only)."""
    length = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            return 0
        if name == b"content-length" and value.isdigit():
            length = int(value)
    return length


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """The limited protocol; ``protocol_class`` makes the subclass a server uses."""

    limits: ClassVar[ConnectionLimits]
    # Open connections per client address (an IPv6 client by its /64), for one server's
    # protocol instances only: counted in connection_made, uncounted in connection_lost.
    # Only the event loop's thread touches it, in those callbacks: no lock is needed.
    open_per_address: ClassVar[dict[str, int]]

    # Per connection: the head being read and its deadline, the body left to read,
    # and a refusal waiting for the answer in progress. The parser's callbacks run
    # inside data_received, on the event loop: no lock is needed.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_tail = b""
        self._body_left: int | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._pending_refusal: bytes | None = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if self.client is not None:
            host = self.client[0]
            self._address = host if ":" not in host else client_key(host)
            count = self.open_per_address.get(self._address, 0) + 1
            self.open_per_address[self._address] = count
            if count > self.limits.max_per_address and not _is_uncapped(host, self.limits.uncapped):
                self._refuse(_too_many_connections("This address has"))
                return
        if len(self.connections) > self.limits.max_connections:
            self._refuse(_too_many_connections("The server has"))
            return
        # Nothing received yet: an opened, silent connection is timed too.
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._address is not None:
            left = self.open_per_address[self._address] - 1
            if left:
                self.open_per_address[self._address] = left
            else:
                del self.open_per_address[self._address]
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        rest: bytes | memoryview = data
        while rest and not self._refused and not self.transport.is_closing():
            rest = self._feed_head(rest) if self._in_head else self._feed_body(rest)
        if self._in_head and self._head_bytes and self._head_timer is None:
            self._time_head()

    def _feed_head(self, data: bytes | memoryview) -> bytes | memoryview:
        """Parses up to the end of the head being read; returns the rest of ``data``."""
        room = self.limits.max_head_bytes - self._head_bytes
        tail = self._head_tail
        end = _HEAD_END.search(tail + data if tail else data, 0, len(tail) + room)
        if end is not None:
            at = end.end() - len(tail)
            self._head_bytes, self._head_tail = 0, b""
            if at >= len(data):
                super().data_received(data)  # type: ignore[arg-type]
                return b""
            view = memoryview(data)
            super().data_received(view[:at])  # type: ignore[arg-type]
            return view[at:]
        if len(data) <= room:
            self._head_bytes += len(data)
            self._head_tail = (tail + bytes(data[-_HEAD_END_CONTEXT:]))[-_HEAD_END_CONTEXT:]
            super().data_received(data)  # type: ignore[arg-type]
            return b""
        # The head goes on past the limit. Parsed up to it first, so that a request
        # malformed by then is answered 400 by uvicorn instead.
        super().data_received(memoryview(data)[:room])  # type: ignore[arg-type]
        if not self.transport.is_closing():
            self._refuse(
                _envelope(
                    431,
                    "Request Header Fields Too Large",
                    "request_header_too_large",
                    f"The request line and headers are larger than the "
                    f"{self.limits.max_head_bytes} bytes this server accepts.",
                )
            )
        return b""

    def _feed_body(self, data: bytes | memoryview) -> bytes | memoryview:
        """Parses up to the end of a body of declared length, so that a head
        pipelined after it is counted from its first byte; returns the rest. A
        chunked body's end only the parser finds: a head after it in the same
        read is counted from the next read."""
        if self._body_left is None:
            self._body_left = _content_length(self.headers)
        left = self._body_left
        if left <= 0 or len(data) <= left:
            self._body_left = max(0, left - len(data))
            super().data_received(data)  # type: ignore[arg-type]
            return b""
        self._body_left = 0
        view = memoryview(data)
        super().data_received(view[:left])  # type: ignore[arg-type]
        return view[left:]

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_left = None
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # the next bytes are the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._answering():
            return
        if self._pending_refusal is not None:
            self._send_and_close(self._pending_refusal)
        elif self._in_head and self._head_bytes and self._head_timer is None:
            # A head begun during the answer: its time runs from now, not keep-alive's.
            self._unset_keepalive_if_required()
            self._time_head()

    def send_400_response(self, msg: str) -> None:
        if self._answering():
            # uvicorn's 400 would land inside the answer: end the connection after it.
            self._refused = True
            self.cycle.keep_alive = False
            return
        # A head httptools cannot parse (a malformed header, a Content-Length that is not
        # a number, …): the API's one error shape, not uvicorn's plain text.
        self._refuse(
            _envelope(400, "Bad Request", "invalid_request", f"Malformed HTTP request: {msg}")
        )

    def _answering(self) -> bool:
        """An answer (the newest request's, or one before it) is still being written."""
        return self.cycle is not None and not self.cycle.response_complete

    def _time_head(self) -> None:
        if self._refused or self.transport.is_closing():
            return
        if not self._answering():  # else from the answer's end (on_response_complete)
            self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(
                _envelope(
                    408,
                    "Request Timeout",
                    "request_timeout",
                    f"The request headers did not arrive within {self.limits.head_timeout_s:g} s.",
                )
            )
        else:
            self.transport.close()

    def _refuse(self, response: bytes) -> None:
        """Answers ``response`` and closes: now, or after the answer in progress."""
        self._cancel_head_timer()
        self._refused = True  # later input is dropped unread
        if self._answering():
            self._pending_refusal = response
        else:
            self._send_and_close(response)

    def _send_and_close(self, response: bytes) -> None:
        self._unset_keepalive_if_required()
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            # Closed by then at the latest; the client's own close ends it sooner.
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def protocol_class(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's ``http=`` takes a class: a subclass per server, which carries
    ``limits`` and its own count of connections per address."""
    attributes = {"limits": limits, "open_per_address": {}}
    return type(LimitedHttpToolsProtocol.__name__, (LimitedHttpToolsProtocol,), attributes)
