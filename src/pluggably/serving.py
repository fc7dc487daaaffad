"""How ``pluggably serve`` runs uvicorn: the connection limits, the open-file limit
they must fit under, and which peers may speak for a client (proxy headers)."""

from __future__ import annotations

import sys
from ipaddress import ip_network
from typing import Any, Literal

from pydantic import IPvAnyNetwork

from pluggably.api.http_protocol import ConnectionLimits, Network, protocol_class
from pluggably.config import Settings
from pluggably.observability.logging import get_logger

log = get_logger("pluggably.serving")

# Descriptors kept for everything but client connections: the database (its pool,
# SQLite's journal), model and artifact files, downloads, logs, the event loop.
RESERVED_FDS = 256


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the common soft 1024 is what a
    thousand slow connections exhaust); returns the soft limit now in force."""
    if sys.platform == "win32":  # no RLIMIT_NOFILE; sockets are not bounded by it
        return 1 << 20
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited:
        return 1 << 20
    # An unlimited hard limit still has the kernel's nr_open above it: ask for a million.
    target = 1 << 20 if hard == unlimited else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a sandbox may refuse; keep the soft limit
            log.warning("open_file_limit_not_raised", soft=soft, hard=hard, error=str(exc))
    return soft


def connection_cap(wanted: int, open_files: int) -> int:
    """``max_connections`` lowered to fit the open-file limit: each client connection
    may also hold an upstream socket (a proxied generation), so it counts twice."""
    fitting = max(1, (open_files - RESERVED_FDS) // 2)
    if wanted > fitting:
        log.warning(
            "max_connections_lowered",
            configured=wanted,
            effective=fitting,
            open_file_limit=open_files,
            hint="raise the hard open-file limit (ulimit -Hn, LimitNOFILE=) to allow more",
        )
        return fitting
    return wanted


def _networks(proxies: list[IPvAnyNetwork | Literal["*"]]) -> tuple[Network, ...]:
    """``trusted_proxies`` as networks, ``"*"`` as every address."""
    if "*" in proxies:
        return (ip_network("0.0.0.0/0"), ip_network("::/0"))
    return tuple(proxy for proxy in proxies if proxy != "*")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run``/``uvicorn.Config`` for ``settings``."""
    trusted = [str(proxy) for proxy in settings.trusted_proxies]
    limits = ConnectionLimits(
        max_head_bytes=settings.max_request_header_bytes,
        head_timeout_s=settings.header_read_timeout_s,
        max_connections=connection_cap(settings.max_connections, raise_open_file_limit()),
        max_per_address=settings.max_connections_per_address,
        uncapped=_networks(settings.trusted_proxies),
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "http": protocol_class(limits),
        # No route is a WebSocket: an upgraded connection would leave the protocol that
        # counts it per address, so upgrades are answered as plain requests.
        "ws": "none",
        # Without trusted proxies, X-Forwarded-* is ignored: the peer address is the
        # client (uvicorn would otherwise believe any local process's header).
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "log_config": None,
        "access_log": False,  # our middleware logs one line per request, without queries
        "server_header": False,
    }
