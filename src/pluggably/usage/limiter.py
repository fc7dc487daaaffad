"""Limits on one request: the allow-lists narrow its candidates, then the counters
admit it (rpm, tpm on an estimate, concurrency, budgets) before any candidate runs,
and settle it on what it really used once it ends. Every surface goes through
``Preparation.prepare`` and ``Outcomes``, so none can skip a limit; the counters are
keyed by user and token, so switching surface or token cannot either."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from pluggably.auth.principal import Principal
from pluggably.db import Database, utcnow
from pluggably.errors import GatewayError, ModelNotAllowed
from pluggably.generation.context import estimate_tokens
from pluggably.generation.models import RequestRecord
from pluggably.generation.records import RequestRecords
from pluggably.observability.context import current
from pluggably.observability.metrics import Metrics
from pluggably.routing.resolve import Target
from pluggably.usage.counters import SLOT_TTL_S, Admission, Ask, Counters, SpendSince
from pluggably.usage.limits import Limits, ScopeLimits, allows_model, scope_limits
from pluggably.usage.memory_counters import MemoryCounters
from pluggably.usage.pg_counters import PostgresCounters


def user_scope(user_id: str) -> str:
    return f"user:{user_id}"


def token_scope(token_id: str) -> str:
    return f"token:{token_id}"


_Levels = tuple[Limits | None, Limits | None, Limits | None]
# (user, token, ids of the levels) -> (the levels themselves, kept so that an id is never
# reused while cached and compared on a hit, and their scopes).
_SCOPES: dict[tuple[str, str | None, int, int, int], tuple[_Levels, tuple[ScopeLimits, ...]]] = {}
_MAX_CACHED = 10_000


class Levels:
    """The limits that apply to one caller: the server default (not for admins), the
    user's, the token's."""

    __slots__ = ("default", "principal", "token", "user")

    def __init__(self, principal: Principal, default: Limits | None, user: Limits | None) -> None:
        self.principal = principal
        self.default = None if principal.role == "admin" else default
        self.user = user
        self.token = principal.limits if principal.token_id else None

    def any(self) -> bool:
        return self.default is not None or self.user is not None or self.token is not None

    def allow_lists(self) -> list[list[str]]:
        return [
            level.models
            for level in (self.default, self.user, self.token)
            if level is not None and level.models is not None
        ]

    def scopes(self) -> tuple[ScopeLimits, ...]:
        """The scopes with something to count (combined once per set of levels: the
        same Limits objects come back on every request until a caller's profile is read
        again)."""
        key = (
            self.principal.user_id,
            self.principal.token_id,
            id(self.default),
            id(self.user),
            id(self.token),
        )
        cached = _SCOPES.get(key)
        if cached is not None and all(
            a is b for a, b in zip(cached[0], (self.default, self.user, self.token), strict=True)
        ):
            return cached[1]
        found = []
        user = scope_limits(user_scope(self.principal.user_id), self.default, self.user)
        if not user.is_empty():
            found.append(user)
        token_id = self.principal.token_id
        if token_id is not None and self.token is not None:
            token = scope_limits(token_scope(token_id), self.token)
            if not token.is_empty():
                found.append(token)
        if len(_SCOPES) >= _MAX_CACHED:
            _SCOPES.clear()
        _SCOPES[key] = ((self.default, self.user, self.token), tuple(found))
        return _SCOPES[key][1]

    def spend_scopes(self) -> tuple[str, ...]:
        token_id = self.principal.token_id
        user = user_scope(self.principal.user_id)
        return (user, token_scope(token_id)) if token_id else (user,)


class Limiter:
    def __init__(
        self,
        default: Limits | None,
        *,
        db: Database,
        records: RequestRecords,
        metrics: Metrics,
        slot_ttl_s: float = SLOT_TTL_S,
    ) -> None:
        self.default = default
        self.db, self.records, self.metrics = db, records, metrics
        self.counters: Counters = counters_for(db, self.spend_since, slot_ttl_s)

    def levels(self, principal: Principal, user_limits: Limits | None) -> Levels:
        return Levels(principal, self.default, user_limits)

    def allowed(
        self, levels: Levels, targets: list[Target], primary: Target | None, named: bool
    ) -> list[Target]:
        """The candidates every allow-list admits. A model the caller named that a list
        refuses is a 403; fallbacks a list refuses are dropped."""
        lists = levels.allow_lists()
        if not lists:
            return targets
        kept = [t for t in targets if all(allows_model(patterns, t.label) for patterns in lists)]
        refused_primary = named and primary is not None and primary not in kept
        if refused_primary or not kept:
            label = primary.label if primary is not None else targets[0].label
            self.metrics.limit_refusals.labels("model_not_allowed").inc()
            raise ModelNotAllowed(
                f"This credential may not use '{label}'. Allowed models: "
                + "; ".join(", ".join(patterns) for patterns in lists)
                + "."
            )
        return kept

    async def admit(self, levels: Levels, request_id: str, estimate: int) -> Admission | None:
        """Count the request against the caller's limits (None: none apply). A refusal
        raises; an admission's ``x-ratelimit-*`` headers go on the response."""
        scopes = levels.scopes()
        if not scopes:
            return None
        try:
            admission = await self.counters.admit(Ask(request_id, scopes, estimate, utcnow()))
        except GatewayError as exc:
            self.metrics.limit_refusals.labels(exc.code).inc()
            raise
        headers = admission.headroom.headers()
        ctx = current()
        if headers and ctx is not None:
            ctx.headers = {**(ctx.headers or {}), **headers}
        return admission

    async def release(self, admission: Admission | None) -> None:
        """The request was admitted but will not run (a later check refused it)."""
        if admission is not None:
            await self.counters.settle(admission, 0)

    async def finished(
        self,
        levels_spend: tuple[str, ...],
        admission: Admission | None,
        tokens: int | None,
        cost_usd: float | None,
    ) -> None:
        """Settle what the request used: its real tokens replace the estimate, its slot
        goes back, its cost counts against every budget of its user and token."""
        if admission is not None:
            await self.counters.settle(admission, admission.tokens if tokens is None else tokens)
        if cost_usd:
            await self.counters.spend(levels_spend, cost_usd, utcnow())

    async def close(self) -> None:
        await self.counters.close()

    async def spend_since(self, scope: str, since: datetime) -> float:
        """What the request records say ``scope`` spent since ``since`` (a budget's seed).
        Queued records are written first, so the sum holds every finished request."""
        await self.records.flush()
        kind, _, ident = scope.partition(":")
        column = RequestRecord.user_id if kind == "user" else RequestRecord.token_id
        query = select(func.coalesce(func.sum(RequestRecord.cost_usd), 0.0)).where(
            column == ident, RequestRecord.created_at >= since
        )
        async with self.db.session() as session:
            return float((await session.scalar(query)) or 0.0)


def counters_for(db: Database, spend_since: SpendSince, slot_ttl_s: float) -> Counters:
    """Shared counters on PostgreSQL (replicas); in this process on SQLite."""
    if db.dialect == "postgresql":
        return PostgresCounters(db, spend_since, slot_ttl_s=slot_ttl_s)
    return MemoryCounters(spend_since, slot_ttl_s=slot_ttl_s)


def estimate(prompt_tokens: int, texts: list[str], parameters: dict[str, object]) -> int:
    """A call's tokens before it runs: its prompt and the most it may write."""
    tokens = prompt_tokens + sum(estimate_tokens(text) for text in texts)
    most = parameters.get("max_tokens")
    return tokens + (most if isinstance(most, int) and most > 0 else 0)
