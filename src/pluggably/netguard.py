"""Outbound URLs that users supply: http(s) only, and (unless the operator allows
it) never to loopback, private or link-local addresses. Every address the host
resolves to is checked, right before connecting."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from pluggably.errors import InvalidParameter


async def check_public_url(url: str, *, allow_private: bool) -> None:
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
    except OSError:
        raise InvalidParameter(f"Cannot resolve the host '{parts.hostname}'.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidParameter(
                f"Refusing to download from {parts.hostname} ({address}): private, loopback "
                "and link-local addresses are not allowed (PLUGGABLY_ALLOW_PRIVATE_DOWNLOADS)."
            )
