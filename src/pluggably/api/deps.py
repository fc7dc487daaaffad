"""Typed dependencies: each service a route uses, a database session per request,
and the caller's Principal with the scope or role a route needs. Routes ask for
these, never for the container itself."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.artifacts.service import ArtifactService
from pluggably.auth.browser_session import CSRF_HEADER, SESSION_COOKIE, CsrfTokens
from pluggably.auth.principal import Principal, Scope
from pluggably.catalog.service import ModelCatalog
from pluggably.container import Container
from pluggably.credentials.service import CredentialService
from pluggably.db import Database
from pluggably.downloads.manager import DownloadManager
from pluggably.errors import Forbidden, NotReady, Unauthorized
from pluggably.generation.counting import TokenCounting
from pluggably.generation.service import GenerationService
from pluggably.lifecycle.residency import ResidencyService
from pluggably.observability.context import current
from pluggably.observability.metrics import Metrics
from pluggably.providers.directory import ProviderDirectory
from pluggably.registry.hub import HubClient
from pluggably.registry.service import RegistryService
from pluggably.responses.service import ResponseStore
from pluggably.sessions.service import SessionService
from pluggably.storage.quota import Quota
from pluggably.storage.retention import Retention
from pluggably.usage.limits import Limits
from pluggably.usage.reports import UsageReports
from pluggably.users.admin import UserAdmin
from pluggably.users.first_run import FirstRun
from pluggably.users.invites import InviteService
from pluggably.users.service import AccountService
from pluggably.users.tokens import TokenService


async def get_container(request: Request) -> Container:
    """``async``: FastAPI runs plain-``def`` dependencies in its thread pool, a thread hop
    on every request for what is an attribute read."""
    container: Container | None = getattr(request.app.state, "container", None)
    if container is None:
        raise NotReady("The server is still starting.", retry_after=1)
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def _database_if_started(request: Request) -> Database | None:
    """The database once startup has built the container, else None (for /ready, which
    reports a server still starting in its own answer)."""
    container: Container | None = getattr(request.app.state, "container", None)
    return container.db if container is not None else None


StartedDb = Annotated[Database | None, Depends(_database_if_started)]


async def db_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed when the route returns normally."""
    async with container.db.session() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client
# never sees a success whose writes are not yet (or never) durable.
DbSession = Annotated[AsyncSession, Depends(db_session, scope="function")]


def credential_from(request: Request) -> str | None:
    """``X-API-Key: <c>`` or ``Authorization: Bearer <c>``; the first one present wins."""
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def _loopback_name(netloc: str) -> bool:
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    return host.lower() in _LOOPBACK_NAMES or netloc.lower() in _LOOPBACK_NAMES


def _is_local_call(request: Request) -> bool:
    """A loopback peer that also addressed us by a loopback name. Checking Host and
    Origin stops DNS rebinding: a web page whose domain now resolves to 127.0.0.1
    still sends its own domain in Host, and its own origin in Origin."""
    if request.client is None:
        return False
    try:
        if not ipaddress.ip_address(request.client.host).is_loopback:
            return False
    except ValueError:
        return False
    if not _loopback_name(request.headers.get("host", "")):
        return False
    # A forwarded request is someone else's, even from loopback (a reverse proxy on
    # this machine), whether or not its proxy is trusted to name the client.
    if any(name in request.headers for name in _FORWARDING_HEADERS):
        return False
    origin = request.headers.get("origin")
    return origin is None or _loopback_name(urlsplit(origin).netloc)


def session_cookie_credential(request: Request, container: Container) -> str | None:
    """The console's session cookie, once its CSRF header checks out; None without one.

    A browser sends the cookie with any request to this origin, whoever's page made
    it; only the console's own script can read the CSRF value and echo it, so a cookie
    without the right header never authenticates."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    presented = request.headers.get(CSRF_HEADER)
    if not presented:
        raise Forbidden(
            f"The session cookie needs the {CSRF_HEADER} header (the console sends it); "
            "API clients send 'X-API-Key' or 'Authorization: Bearer' instead."
        )
    if not container.csrf.matches(token, presented):
        raise Forbidden(f"The {CSRF_HEADER} header does not match this session; sign in again.")
    return token


async def authenticate(request: Request, container: ContainerDep) -> Principal:
    # Header credentials first, and without touching cookies: that is every API client.
    credential = credential_from(request) or session_cookie_credential(request, container)
    principal = await container.auth.resolve(credential, client_is_loopback=_is_local_call(request))
    ctx = current()
    if ctx is not None:
        ctx.principal_id = principal.user_id
    return principal


async def console_session(request: Request, container: ContainerDep) -> Principal | None:
    """The principal of the console's session cookie (CSRF-checked), or None when
    there is no cookie or its login no longer works: for signing out, which must
    succeed either way. Not ``authenticate``: the route stays public."""
    token = session_cookie_credential(request, container)
    if token is None:
        return None
    try:
        return await container.auth.resolve(token, client_is_loopback=False)
    except Unauthorized:
        return None


def require_scope(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"This operation needs the '{scope}' scope.")
        return principal

    return check


async def require_admin(
    principal: Annotated[Principal, Depends(authenticate)],
) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This operation is for administrators.")
    return principal


async def _accounts(container: ContainerDep) -> AccountService:
    return container.accounts


async def _tokens(container: ContainerDep) -> TokenService:
    return container.tokens


async def _invites(container: ContainerDep) -> InviteService:
    return container.invites


async def _user_admin(container: ContainerDep) -> UserAdmin:
    return container.user_admin


async def _server_limits(container: ContainerDep) -> Limits | None:
    return container.settings.limits


async def _usage_reports(container: ContainerDep) -> UsageReports:
    return container.usage_reports


async def _credentials(container: ContainerDep) -> CredentialService:
    return container.credentials


async def _registry(container: ContainerDep) -> RegistryService:
    return container.registry


async def _downloads(container: ContainerDep) -> DownloadManager:
    return container.downloads


async def _artifacts(container: ContainerDep) -> ArtifactService:
    return container.artifacts


async def _generation(container: ContainerDep) -> GenerationService:
    return container.generation


async def _counting(container: ContainerDep) -> TokenCounting:
    return container.counting


async def _residency(container: ContainerDep) -> ResidencyService:
    return container.residency


async def _catalog(container: ContainerDep) -> ModelCatalog:
    return container.catalog


async def _providers(container: ContainerDep) -> ProviderDirectory:
    return container.providers


async def _hub(container: ContainerDep) -> HubClient:
    return container.hub


async def _quota(container: ContainerDep) -> Quota:
    return container.quota


async def _retention(container: ContainerDep) -> Retention:
    return container.retention


async def _sessions(container: ContainerDep) -> SessionService:
    return container.sessions


async def _responses(container: ContainerDep) -> ResponseStore:
    return container.responses


ReclaimLater = Callable[[], None]


async def _reclaim_later(container: ContainerDep, background: BackgroundTasks) -> ReclaimLater:
    reclaimer = container.db.reclaimer
    return lambda: background.add_task(reclaimer.run)


async def _metrics(container: ContainerDep) -> Metrics:
    return container.metrics


async def _first_run(container: ContainerDep) -> FirstRun:
    return container.first_run


async def _csrf(container: ContainerDep) -> CsrfTokens:
    return container.csrf


Accounts = Annotated[AccountService, Depends(_accounts)]
Tokens = Annotated[TokenService, Depends(_tokens)]
Invites = Annotated[InviteService, Depends(_invites)]
UserAdministration = Annotated[UserAdmin, Depends(_user_admin)]
# The server default limits (settings.limits), for the routes that describe a caller's.
ServerLimits = Annotated[Limits | None, Depends(_server_limits)]
UsageReporting = Annotated[UsageReports, Depends(_usage_reports)]
Credentials = Annotated[CredentialService, Depends(_credentials)]
Registry = Annotated[RegistryService, Depends(_registry)]
Downloads = Annotated[DownloadManager, Depends(_downloads)]
Artifacts = Annotated[ArtifactService, Depends(_artifacts)]
Generation = Annotated[GenerationService, Depends(_generation)]
TokenCounter = Annotated[TokenCounting, Depends(_counting)]
Residency = Annotated[ResidencyService, Depends(_residency)]
Catalog = Annotated[ModelCatalog, Depends(_catalog)]
Providers = Annotated[ProviderDirectory, Depends(_providers)]
Hub = Annotated[HubClient, Depends(_hub)]
StorageQuota = Annotated[Quota, Depends(_quota)]
StorageRetention = Annotated[Retention, Depends(_retention)]
Sessions = Annotated[SessionService, Depends(_sessions)]
Responses = Annotated[ResponseStore, Depends(_responses)]
# Call it to give the file space of deleted rows back (SQLite) after the response is sent.
Reclaim = Annotated[ReclaimLater, Depends(_reclaim_later)]
AppMetrics = Annotated[Metrics, Depends(_metrics)]
FirstRunSetup = Annotated[FirstRun, Depends(_first_run)]
Csrf = Annotated[CsrfTokens, Depends(_csrf)]
ConsoleSession = Annotated[Principal | None, Depends(console_session)]

CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
Reader = Annotated[Principal, Depends(require_scope(Scope.READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.WRITE))]
AdminUser = Annotated[Principal, Depends(require_admin)]


async def metrics_access(request: Request, container: ContainerDep) -> None:
    """``/metrics`` is admin-only unless the operator made it public."""
    if not container.settings.metrics_public:
        await require_admin(await authenticate(request, container))


MetricsAccess = Annotated[None, Depends(metrics_access)]
