"""The stateful objects of one app, built once in the lifespan and handed to routes
through typed dependencies (``api/deps.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pluggably.artifacts.service import ArtifactService
from pluggably.artifacts.stores import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from pluggably.auth.browser_session import CsrfTokens
from pluggably.auth.external import ExternalJwtDecoder
from pluggably.auth.login_tokens import LoginTokens
from pluggably.auth.passwords import PasswordHasher
from pluggably.auth.principal import ALL_SCOPES, Principal
from pluggably.auth.resolver import AdminKeyVerifier, CredentialResolver, Verifier
from pluggably.auth.throttle import LoginThrottle
from pluggably.auth.token_hash import TokenHasher
from pluggably.catalog.service import ModelCatalog
from pluggably.cluster.identity import ReplicaIdentity
from pluggably.cluster.node import ClusterNode
from pluggably.config import Settings
from pluggably.credentials.service import CredentialService
from pluggably.credentials.vault import Vault
from pluggably.db import Database
from pluggably.downloads.manager import DownloadManager
from pluggably.downloads.runs import DownloadSettings
from pluggably.downloads.worker import DownloadRunner
from pluggably.generation.background import Background
from pluggably.generation.callers import CallerCache
from pluggably.generation.candidates import Candidates
from pluggably.generation.counting import TokenCounting
from pluggably.generation.live import LiveRequests
from pluggably.generation.outcomes import Outcomes
from pluggably.generation.preparation import Preparation
from pluggably.generation.records import RequestRecords
from pluggably.generation.service import GenerationService
from pluggably.generation.turns import SessionTurns
from pluggably.keyring import Keyring
from pluggably.lifecycle.limits import SchedulerLimits
from pluggably.lifecycle.local import LocalBackend
from pluggably.lifecycle.residency import ResidencyService
from pluggably.lifecycle.scheduler import Scheduler
from pluggably.observability.metrics import Metrics
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.model_lists import Discovery
from pluggably.providers.upstream import Upstream
from pluggably.registry.hub import HubClient
from pluggably.registry.service import RegistryService
from pluggably.responses.service import ResponseStore
from pluggably.routing.cooldown import Cooldowns
from pluggably.routing.resolve import Router
from pluggably.runtimes.base import ModelSpec, Runtime
from pluggably.runtimes.factory import make_runtime
from pluggably.sessions.service import SessionService
from pluggably.startup import Readiness
from pluggably.storage.quota import Quota
from pluggably.storage.retention import Retention
from pluggably.usage.limiter import Limiter
from pluggably.usage.prices import PriceTable
from pluggably.usage.reports import UsageReports
from pluggably.users.admin import UserAdmin
from pluggably.users.first_run import FirstRun
from pluggably.users.invites import InviteService
from pluggably.users.service import AccountService
from pluggably.users.tokens import TokenService
from pluggably.users.verifiers import ApiTokenVerifier, ExternalJwtVerifier, LoginTokenVerifier


@dataclass
class Container:
    settings: Settings
    metrics: Metrics
    readiness: Readiness
    db: Database
    # This process as one replica (cluster/): its id on requests, leases and messages.
    replica: ReplicaIdentity
    keyring: Keyring
    auth: CredentialResolver
    accounts: AccountService
    tokens: TokenService
    invites: InviteService
    credentials: CredentialService
    registry: RegistryService
    hub: HubClient
    quota: Quota
    downloads: DownloadManager
    retention: Retention
    http: Upstream
    providers: ProviderDirectory
    records: RequestRecords
    artifacts: ArtifactService
    scheduler: Scheduler
    residency: ResidencyService
    sessions: SessionService
    responses: ResponseStore
    admin_user_id: str
    # The console's first-run setup (a token only when no one can administer the server).
    first_run: FirstRun
    # Binds the console's CSRF header to its session cookie.
    csrf: CsrfTokens
    # Built from the parts above, once they are there.
    generation: GenerationService = field(init=False)
    # On PostgreSQL: heartbeat, bus and relay to the other replicas (None: alone).
    cluster: ClusterNode | None = field(init=False, default=None)
    counting: TokenCounting = field(init=False)
    catalog: ModelCatalog = field(init=False)
    limiter: Limiter = field(init=False)
    user_admin: UserAdmin = field(init=False)
    usage_reports: UsageReports = field(init=False)

    def __post_init__(self) -> None:
        # Each needs one part given above, nothing that build_container wires.
        self.user_admin = UserAdmin.of(self.settings)
        self.usage_reports = UsageReports(self.records)


def build_container(
    settings: Settings,
    metrics: Metrics,
    readiness: Readiness,
    db: Database,
    keyring: Keyring,
    admin_user_id: str,
    setup_token: str | None = None,
) -> Container:
    hasher = TokenHasher(keyring)
    login_tokens = LoginTokens(keyring, timedelta(minutes=settings.login_token_ttl_minutes))
    invites = InviteService(hasher, timedelta(days=settings.invite_ttl_days))
    scheduler = _scheduler(settings, metrics)
    registry = RegistryService(settings.models_dir, scheduler)
    credentials = CredentialService(
        Vault(keyring), settings.providers, settings.server_keys_allowed
    )
    replica = ReplicaIdentity(shared=db.dialect == "postgresql", lease_s=settings.cluster_lease_s)
    hub = _hub(settings)
    quota = Quota(settings.models_dir, settings.storage_limit_bytes)
    downloads = _downloads(settings, db, registry, quota, hub, metrics, replica)
    # One client for every provider call (connections reused across requests).
    http = Upstream(timeout_s=settings.upstream_timeout_s, proxy=settings.upstream_proxy)
    providers = ProviderDirectory(http, settings.providers, settings.endpoints, metrics)
    records = RequestRecords(db, replica_id=replica.replica_id)
    sessions = SessionService.from_settings(settings)
    artifacts = _artifacts(settings, keyring)
    router = Router(providers, registry, settings.fallbacks, settings.default_fallbacks)
    accounts = _accounts(settings, login_tokens, invites, router)
    container = Container(
        settings=settings,
        metrics=metrics,
        readiness=readiness,
        db=db,
        replica=replica,
        keyring=keyring,
        auth=_resolver(settings, db, hasher, login_tokens, admin_user_id),
        accounts=accounts,
        tokens=TokenService(hasher),
        invites=invites,
        credentials=credentials,
        http=http,
        providers=providers,
        records=records,
        registry=registry,
        hub=hub,
        quota=quota,
        downloads=downloads,
        retention=_retention(settings, quota, registry, downloads),
        artifacts=artifacts,
        scheduler=scheduler,
        residency=ResidencyService(registry, scheduler),
        responses=ResponseStore(db),
        sessions=sessions,
        admin_user_id=admin_user_id,
        first_run=FirstRun(db, accounts, setup_token),
        csrf=CsrfTokens(keyring),
    )
    discovery = Discovery()  # what each caller's providers were seen to offer
    container.generation = _generation(container, router, discovery)
    if replica.shared:  # other replicas may run beside this one
        container.cluster = ClusterNode(
            db,
            settings.resolved_database_url,
            replica,
            records,
            container.generation.live,
            accounts.throttle,
            local_models=settings.local_models,
        )
        container.generation.relay = container.cluster.relay
    # The callers' cache is the generation's: a credential change reaches both at once.
    callers = container.generation.callers
    container.counting = TokenCounting(db, router, callers, providers, registry, scheduler)
    container.catalog = ModelCatalog(accounts, providers, credentials, discovery, registry)
    return container


def _hub(settings: Settings) -> HubClient:
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    return HubClient(settings.hf_endpoint, token)


def _retention(
    settings: Settings, quota: Quota, registry: RegistryService, downloads: DownloadManager
) -> Retention:
    staging, running = downloads.staging, downloads.active_jobs
    return Retention(quota, registry, staging, running, settings.retention_max_idle_days)


def _scheduler(settings: Settings, metrics: Metrics) -> Scheduler:
    def runtime_for(spec: ModelSpec) -> Runtime:
        return make_runtime(spec, context_tokens=settings.local_context_tokens)

    limits = SchedulerLimits(
        max_loaded_models=settings.max_loaded_models,
        memory_budget_bytes=settings.memory_budget_bytes,
        keep_alive_s=settings.keep_alive_s,
        max_queue_depth=settings.max_queue_depth,
        max_queue_per_user=settings.max_queue_per_user,
        parallel=settings.local_parallel,
        enabled=settings.local_models,
    )
    return Scheduler(runtime_for, limits, metrics=metrics)


def _downloads(
    settings: Settings,
    db: Database,
    registry: RegistryService,
    quota: Quota,
    hub: HubClient,
    metrics: Metrics,
    replica: ReplicaIdentity,
) -> DownloadManager:
    options = DownloadSettings(
        allow_private_urls=settings.allow_private_downloads,
        keep_partial=settings.keep_partial_downloads,
        size_guard_bytes=settings.download_size_guard_bytes,
    )
    return DownloadManager(DownloadRunner(db, registry, quota, hub, options, metrics, replica))


def _accounts(
    settings: Settings, login_tokens: LoginTokens, invites: InviteService, router: Router
) -> AccountService:
    throttle = LoginThrottle(
        settings.login_max_failures,
        settings.login_max_failures_per_address,
        settings.login_failure_window_s,
        slowdown_after=settings.login_slowdown_after,
        slowdown_max_s=settings.login_slowdown_max_s,
        per_account=settings.login_max_failures_per_account,
        registrations_per_address=settings.registration_max_failures_per_address,
    )
    return AccountService(
        passwords=PasswordHasher(),
        login_tokens=login_tokens,
        throttle=throttle,
        invites=invites,
        registration_open=settings.registration_open,
        # A preferred model is whatever a request's ``model`` could name.
        check_model=router.parse,
    )


def _generation(c: Container, router: Router, discovery: Discovery) -> GenerationService:
    """The generation service and its parts, each built once here."""
    settings, db, metrics, providers, registry = (
        c.settings,
        c.db,
        c.metrics,
        c.providers,
        c.registry,
    )
    records, scheduler, credentials = c.records, c.scheduler, c.credentials
    cooldowns, live, background = Cooldowns(), LiveRequests(), Background()
    callers = CallerCache(c.accounts, credentials)
    local = LocalBackend(scheduler, metrics)
    turns = SessionTurns(c.sessions, db)
    limiter = c.limiter = Limiter(
        settings.limits,
        db=db,
        records=records,
        metrics=metrics,
        slot_ttl_s=settings.limit_slot_ttl_s,
    )
    outcomes = Outcomes(
        db,
        records,
        metrics,
        providers=providers,
        cooldowns=cooldowns,
        discovery=discovery,
        registry=registry,
        artifacts=c.artifacts,
        turns=turns,
        limiter=limiter,
        prices=PriceTable(settings.prices),
        inline_output_bytes=settings.inline_output_bytes,
    )
    preparation = Preparation(
        db,
        router,
        callers,
        providers=providers,
        cooldowns=cooldowns,
        registry=registry,
        local=local,
        turns=turns,
        records=records,
        background=background,
        limiter=limiter,
        local_context_tokens=settings.local_context_tokens,
    )
    return GenerationService(
        preparation,
        Candidates(providers, local, outcomes, live),
        outcomes,
        callers=callers,
        live=live,
        background=background,
        scheduler=scheduler,
    )


def _resolver(
    settings: Settings,
    db: Database,
    hasher: TokenHasher,
    login_tokens: LoginTokens,
    admin_user_id: str,
) -> CredentialResolver:
    verifiers: list[Verifier] = []
    if settings.admin_key is not None:
        verifiers.append(AdminKeyVerifier(settings.admin_key.get_secret_value(), admin_user_id))
    verifiers += [ApiTokenVerifier(db, hasher), LoginTokenVerifier(db, login_tokens)]
    if settings.external_jwt is not None:
        verifiers.append(ExternalJwtVerifier(db, ExternalJwtDecoder(settings.external_jwt)))
    local = (
        Principal(user_id=admin_user_id, role="admin", scopes=ALL_SCOPES, via="local")
        if settings.local_only
        else None
    )
    return CredentialResolver(verifiers, local)


def _artifacts(settings: Settings, keyring: Keyring) -> ArtifactService:
    ttl = timedelta(seconds=settings.artifact_ttl_s)
    return ArtifactService(_artifact_store(settings), keyring, settings.public_base_url, ttl)


def _artifact_store(settings: Settings) -> ArtifactStore:
    s3 = settings.artifacts_s3
    if settings.artifacts_backend == "local" or s3 is None:
        return LocalArtifactStore(settings.artifacts_dir)
    secret = s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
    return S3ArtifactStore(
        s3.bucket,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key_id,
        secret_access_key=secret,
        prefix=s3.prefix,
    )
