"""One file over HTTP into a ``.part`` file: resumable with Range, cancellable
between chunks (closing the connection), following redirects only where allowed,
connecting only to public addresses where the URL came from a user."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin

import httpcore
import httpx

from pluggably.errors import BackendUnavailable, GatewayError, InvalidParameter, UpstreamError
from pluggably.netguard import NotPublic, PublicOnlyBackend

CHUNK = 1 << 20
MAX_REDIRECTS = 5


class Cancelled(Exception):
    """The job was cancelled while transferring."""


class _PublicOnlyTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        # httpx takes no network backend of its own: its pool is replaced by one that
        # connects through PublicOnlyBackend (same TLS settings as httpx's default).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=PublicOnlyBackend()
        )


def public_only_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A client for URLs users name: every connection (each redirect's included) goes
    to a public address, resolved as it is made, so a name that passed the check when
    the download was planned cannot point inside by the time it is fetched. Behind a
    proxy from the environment (HTTPS_PROXY), as before, the proxy makes the connection:
    that check is then the proxy's."""
    return httpx.AsyncClient(timeout=timeout, transport=_PublicOnlyTransport())


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    part: Path,
    *,
    headers: dict[str, str],
    expected_size: int | None,
    on_bytes: Callable[[int], None],
    cancel: asyncio.Event,
    check_redirect: Callable[[str], Awaitable[None]] | None,
) -> None:
    """Append the rest of ``url`` to ``part``. ``check_redirect`` vets every hop when
    set; without it, redirects are followed as the hub's CDN needs."""
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size:
        return
    request_headers = dict(headers)
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    try:
        for _ in range(MAX_REDIRECTS + 1):
            request = client.build_request("GET", url, headers=request_headers)
            response = await client.send(
                request, stream=True, follow_redirects=check_redirect is None
            )
            try:
                if response.is_redirect and check_redirect is not None:
                    url = urljoin(url, response.headers["location"])
                    await check_redirect(url)
                    continue
                await _write(response, part, offset, on_bytes, cancel)
                return
            finally:
                await response.aclose()
        raise InvalidParameter(f"Too many redirects from {url}.")
    except NotPublic:
        raise InvalidParameter(
            f"Refusing to download from {_host(url)}: it does not resolve to a public address "
            "(see PLUGGABLY_ALLOW_PRIVATE_DOWNLOADS)."
        ) from None
    except httpx.TimeoutException:
        raise BackendUnavailable(
            f"The download from {_host(url)} timed out.", retry_after=30
        ) from None
    except httpx.HTTPError as exc:
        raise BackendUnavailable(
            f"The download from {_host(url)} failed: {type(exc).__name__}.", retry_after=30
        ) from None


async def _write(
    response: httpx.Response,
    part: Path,
    offset: int,
    on_bytes: Callable[[int], None],
    cancel: asyncio.Event,
) -> None:
    if response.status_code == 416 and offset:
        return  # the part file already holds everything
    if response.status_code >= 400:
        raise _http_error(response)
    if offset and (response.status_code != 206 or not _starts_at(response, offset)):
        offset = 0  # the server ignored Range (or answered another one): start over
        on_bytes(-part.stat().st_size)
    mode = "ab" if offset else "wb"
    with part.open(mode) as out:
        async for chunk in response.aiter_bytes():  # as it arrives: a resume loses little
            if cancel.is_set():
                raise Cancelled
            out.write(chunk)
            on_bytes(len(chunk))


def _starts_at(response: httpx.Response, offset: int) -> bool:
    content_range = response.headers.get("content-range", "")  # "bytes 100-199/200"
    start = content_range.removeprefix("bytes ").split("-", 1)[0]
    return start.isdigit() and int(start) == offset


def _http_error(response: httpx.Response) -> GatewayError:
    host = _host(str(response.url))
    if response.status_code in {401, 403}:
        return UpstreamError(
            f"{host} refused the download ({response.status_code}): check access and tokens."
        )
    if response.status_code == 404:
        return UpstreamError(f"{host} has no such file (404).")
    if response.status_code == 429 or response.status_code >= 500:
        return BackendUnavailable(
            f"{host} answered {response.status_code}; retry later.", retry_after=30
        )
    return UpstreamError(f"{host} answered {response.status_code}.")


def _host(url: str) -> str:
    return httpx.URL(url).host or url


def sha256_of(path: Path) -> str:
    """Blocking."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
