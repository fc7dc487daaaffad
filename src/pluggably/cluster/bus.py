"""Messages between replicas over PostgreSQL LISTEN/NOTIFY: no service beyond the
database. Each replica LISTENs on a channel named for itself and sends with
``pg_notify`` to another's; a message is a small JSON object whose ``k`` names its
handler here.

Delivery is at most once: a message to a replica that is gone, or sent while a
connection is being replaced, is lost. Callers therefore never wait on a reply
forever (relay.py bounds every wait and falls back on the request's record).
Notifications from one sender arrive in the order sent (one sending connection,
handlers run in arrival order), which keeps a request's deltas in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from pluggably.observability.logging import get_logger

log = get_logger("pluggably.cluster")
# PostgreSQL refuses payloads of 8000 bytes and more; messages stay under this.
MAX_PAYLOAD_BYTES = 7000
RECONNECT_S = 1.0
# The listening connection is otherwise silent: a query now and then finds it cut
# without a word (a NAT or firewall dropping an idle connection, a host gone), which
# would leave this replica deaf to every follow and cancel, and keeps it from idling.
PING_S = 5.0
# A send (or a ping) that takes longer is on a dead connection: it is replaced.
ANSWER_TIMEOUT_S = 5.0

Message = dict[str, Any]
Handler = Callable[[Message], None]


def channel(replica_id: str) -> str:
    return f"pluggably_{replica_id}"


# Every replica listens here too: what all of them must know (broadcast).
EVERYONE = "pluggably_all"


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as asyncpg takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def encode(message: Message | list[Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Bus:
    """This replica's two connections: one listening on its own channel, one sending
    (serialised, so one sender's messages keep their order)."""

    def __init__(
        self,
        database_url: str,
        replica_id: str,
        *,
        ping_s: float = PING_S,
        timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.replica_id = replica_id
        self.channel = channel(replica_id)
        self.handlers: dict[str, Handler] = {}
        self.ping_s, self.timeout_s = ping_s, timeout_s
        self._listen: Any = None
        self._send: Any = None
        self._send_lock = asyncio.Lock()  # one send at a time: one sender's order holds
        self._watch: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await self._connect_listener()
        self._watch = asyncio.create_task(self._keep_listening(), name="cluster-bus")

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for conn in (self._listen, self._send):
            await _close(conn)

    async def send(self, replica_id: str, message: Message) -> bool:
        """Send ``message`` to a replica; False when it could not be sent (the
        database is unreachable), which callers treat like a lost message."""
        return await self._notify(channel(replica_id), message)

    async def broadcast(self, message: Message) -> bool:
        """Send ``message`` to every other replica (this one ignores its own)."""
        return await self._notify(EVERYONE, {**message, "f": self.replica_id})

    async def _notify(self, to: str, message: Message) -> bool:
        payload = encode(message)
        if len(payload.encode()) >= MAX_PAYLOAD_BYTES:
            raise ValueError("cluster message too large")  # callers split their data
        async with self._send_lock:
            try:
                if self._send is None or self._send.is_closed():
                    self._send = await _connect(self.dsn)
                await self._send.execute(
                    "SELECT pg_notify($1, $2)", to, payload, timeout=self.timeout_s
                )
                return True
            except Exception as exc:  # asyncpg's errors, OSError, TimeoutError: connection
                log.warning("cluster_send_failed", error=type(exc).__name__)
            _drop(self._send)
            self._send = None
            return False

    def _deliver(self, _conn: Any, _pid: int, on: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            handler = self.handlers.get(message.get("k", ""))
        except (ValueError, AttributeError):
            log.warning("cluster_message_unreadable")
            return
        if on == EVERYONE and message.get("f") == self.replica_id:
            return  # our own broadcast
        if handler is None:
            log.warning("cluster_message_unknown", kind=str(message.get("k"))[:32])
            return
        try:
            handler(message)
        except Exception:
            log.exception("cluster_handler_failed", kind=message.get("k"))

    async def _connect_listener(self) -> None:
        conn = await _connect(self.dsn)
        try:
            await conn.add_listener(self.channel, self._deliver)
            await conn.add_listener(EVERYONE, self._deliver)
        except BaseException:
            _drop(conn)
            raise
        self._listen = conn

    async def _keep_listening(self) -> None:
        """Reconnect the listening connection when it breaks (the database restarted)
        or stops answering (cut silently); messages sent meanwhile are lost, as the
        module says."""
        pinged = asyncio.get_running_loop().time()
        while not self._closing:
            await asyncio.sleep(RECONNECT_S)
            conn, now = self._listen, asyncio.get_running_loop().time()
            if conn is not None and not conn.is_closed():
                if now - pinged < self.ping_s:
                    continue
                pinged = now
                if await self._answers(conn):
                    continue
                log.warning("cluster_bus_unanswered")
                _drop(conn)
            try:
                await self._connect_listener()
                pinged = asyncio.get_running_loop().time()
                log.info("cluster_bus_reconnected")
            except Exception as exc:
                log.warning("cluster_bus_reconnect_failed", error=type(exc).__name__)

    async def _answers(self, conn: Any) -> bool:
        try:
            await conn.execute("SELECT 1", timeout=self.timeout_s)
        except Exception:
            return False
        return True


async def _connect(dsn: str) -> Any:
    import asyncpg  # type: ignore[import-untyped]  # the postgres extra, as the engine

    return await asyncpg.connect(dsn, timeout=10)


def _drop(conn: Any) -> None:
    """Let go of a connection that failed: no goodbye to a server that may not hear."""
    if conn is not None and not conn.is_closed():
        conn.terminate()


async def _close(conn: Any) -> None:
    """A clean goodbye at shutdown, or a drop when the server does not take it: the
    rest of the shutdown (leaving the cluster) must still run."""
    if conn is None or conn.is_closed():
        return
    try:
        await conn.close(timeout=2)
    except Exception:
        _drop(conn)
