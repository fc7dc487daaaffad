"""Outbound URLs that users supply: http(s) only, and (unless the operator allows
it) never to loopback, private or link-local addresses. Every address the host
resolves to is checked, right before connecting."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from pluggably.errors import InvalidParameter

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 forms that carry an IPv4 address a gateway or the kernel may reach for it:
# NAT64 (64:ff9b::/96, RFC 6052) and the deprecated IPv4-compatible ::/96.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: Address) -> bool:
    """A global unicast address, and so is any IPv4 address an IPv6 one carries
    (``::ffff:127.0.0.1``, ``64:ff9b::a9fe:a9fe``, ``2002:7f00:1::``)."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    return True


class NotPublic(OSError):
    """A user-supplied host resolved to private, loopback or link-local addresses only."""


async def check_public_url(url: str, *, allow_private: bool, purpose: str = "") -> None:
    """http(s) only, and (unless allowed) no loopback/private/link-local target:
    every resolved address of the host is checked."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidParameter("URLs must be http:// or https:// URLs.")
    if parts.username or parts.password:
        raise InvalidParameter("URLs must not carry credentials.")
    if allow_private:
        return
    try:
        infos = await asyncio.to_thread(
            socket.getaddrinfo, parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError, ValueError):
        raise InvalidParameter(f"Cannot resolve the host '{parts.hostname}'.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not is_public_address(address):
            # Only URL downloads have an operator switch for this; a user's provider
            # endpoint never may reach inside.
            raise InvalidParameter(
                f"Refusing to connect to {parts.hostname} ({address}): private, loopback "
                "and link-local addresses are not allowed"
                + (" (PLUGGABLY_ALLOW_PRIVATE_DOWNLOADS)." if purpose == "download" else ".")
            )
