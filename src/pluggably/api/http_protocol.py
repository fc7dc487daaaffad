"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with the limits it
lacks. httptools buffers a request head of any size, and uvicorn waits forever for
one that never ends, so a few slow or huge heads could hold the server's memory or
every file descriptor it may open.

- a request head (request line and headers) larger than ``max_head_bytes`` is
  answered 431 and the connection closed;
- a head not complete within ``head_timeout_s`` of its first byte (of the
  connection's opening, for the first request) closes the connection, with 408 when
  some of it had arrived; idle keep-alive connections stay uvicorn's
  ``timeout_keep_alive``, and bodies and streamed answers are not timed here;
- connections beyond ``max_connections`` are answered 503 and closed as they are
  accepted, so the process keeps file descriptors for its database and models.

A refused connection is closed gracefully: the answer, then our end of the stream,
then whatever the client still sends is read and dropped for a moment. Closing at once
with unread input would reset the connection, and the client would lose the answer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# How long a refused connection's late input is drained before the socket closes.
LINGER_S = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int
    head_timeout_s: float
    max_connections: int


def _envelope(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete response in the API's error envelope, closing the connection."""
    request_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "detail": {
                "code": code,
                "message": message,
                "details": None,
                "request_id": request_id,
                "retry_after": None,
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def protocol_class(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's ``http=`` takes a class; this one carries ``limits``."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        # Per connection: the head being read and its deadline. The parser's callbacks
        # run inside data_received, on the event loop: no lock is needed.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0
            self._head_timer: asyncio.TimerHandle | None = None
            self._refused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > limits.max_connections:
                self._refuse(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    "The server has too many open connections; retry shortly.",
                )
                return
            # Nothing received yet: an opened, silent connection is timed too.
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                room = limits.max_head_bytes - self._head_bytes
                if len(data) > room:
                    # Parse up to the limit: a head that has not ended by then is too
                    # large; one that has lets the rest (its body) through.
                    super().data_received(data[:room])
                    if self._in_head:
                        self._too_large()
                        return
                    if self.transport.is_closing():
                        return
                    data = data[room:]
                else:
                    self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes and self._head_timer is None:
                # The head's first byte came in this piece: its deadline runs from now.
                self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_late)

        def on_message_complete(self) -> None:
            # Between requests the next bytes are the next head; a head that begins
            # after a body in one piece (pipelining) goes uncounted for that piece.
            self._in_head = True
            self._head_bytes = 0
            super().on_message_complete()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

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
                    408,
                    "Request Timeout",
                    "request_timeout",
                    f"The request headers did not arrive within {limits.head_timeout_s:g} s.",
                )
            else:
                self.transport.close()

        def _too_large(self) -> None:
            if not self.transport.is_closing():  # else httptools refused it first (400)
                self._refuse(
                    431,
                    "Request Header Fields Too Large",
                    "request_header_too_large",
                    f"The request line and headers are larger than the "
                    f"{limits.max_head_bytes} bytes this server accepts.",
                )

        def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
            self._cancel_head_timer()
            self._refused = True
            self.transport.write(_envelope(status, reason, code, message))
            if self.transport.can_write_eof():
                self.transport.write_eof()
                # Closed by then at the latest; the client's own close ends it sooner.
                self.loop.call_later(LINGER_S, self.transport.close)
            else:
                self.transport.close()

    return LimitedHttpToolsProtocol
