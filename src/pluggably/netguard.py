"""Outbound URLs that users supply: http(s) only, and (unless the operator allows
it) never to loopback, private or link-local addresses. Every address the host
resolves to is checked before the call, and again as each connection is made: the
resolvers below hand both HTTP clients (aiohttp for providers, httpx for downloads)
public addresses only, so a name cannot resolve inside between the check and the
connection (DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp
import anyio
import httpcore
from aiohttp.abc import ResolveResult

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
    # A name that resolves inside and one that does not resolve get the same answer,
    # which never says an address: users would learn which inside names exist and what
    # they resolve to. Only URL downloads have an operator switch for inside targets; a
    # user's provider endpoint never may reach inside.
    refusal = InvalidParameter(
        f"Refusing to connect to {parts.hostname}: it does not resolve to a public address "
        "(loopback, private and link-local addresses are not allowed"
        + ("; see PLUGGABLY_ALLOW_PRIVATE_DOWNLOADS)." if purpose == "download" else ").")
    )
    try:
        infos = await asyncio.to_thread(
            socket.getaddrinfo, parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError, ValueError):
        raise refusal from None
    if not infos or not all(is_public_address(ipaddress.ip_address(i[4][0])) for i in infos):
        raise refusal


class PublicOnlyResolver(aiohttp.ThreadedResolver):
    """Host names resolved to public addresses only, at connection time: a name checked
    when it was stored (or just before the call) cannot resolve to an inside address
    when the connection is made. aiohttp never asks a resolver about a literal
    address; ``check_public_url`` vets those before the call."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        public = [r for r in found if is_public_address(ipaddress.ip_address(r["host"]))]
        if not public:
            raise NotPublic(f"{host} resolves to no public address")
        return public


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpx's connections (through httpcore) made to the addresses
    ``PublicOnlyResolver`` hands out, literal addresses included; each is tried in
    turn. ``NotPublic`` comes out as itself, for the caller to say what happened."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                found = await PublicOnlyResolver().resolve(host, port, socket.AF_UNSPEC)
        except NotPublic:
            raise
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: httpcore.ConnectError | None = None
        for address in found:
            try:
                return await self._inner.connect_tcp(
                    address["host"], port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None  # the resolver returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotPublic("a Unix socket is not a public address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
