"""Which models each user can reach at each provider, and what we know of their
credits: model lists fetched with the user's own credential, cached per user and
provider for a TTL, refreshed when the credential changes, and never fetched more
often than the rate limit allows, even after a failure."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pluggably.errors import GatewayError, RateLimited, UpstreamError
from pluggably.providers.base import Credential, Provider

CREDIT_STATES = ("available", "exhausted", "rate_limited", "unknown")


@dataclass
class _Entry:
    fingerprint: str
    fetched_at: float
    models: list[str] | None
    error: str | None = None


@dataclass
class Discovery:
    ttl_s: float = 300.0
    min_interval_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _credits: dict[tuple[str, str], str] = field(default_factory=dict)

    @staticmethod
    def fingerprint(credential: Credential) -> str:
        # A hash, so the cache key never holds the secret itself.
        return hashlib.sha256(json.dumps(credential, sort_keys=True).encode()).hexdigest()[:16]

    async def models(
        self, user_id: str, provider: Provider, credential: Credential
    ) -> list[str] | None:
        key, fingerprint = (user_id, provider.name), self.fingerprint(credential)
        entry = self._cache.get(key)
        now = self.clock()
        if entry is not None and entry.fingerprint == fingerprint:
            age = now - entry.fetched_at
            if age < self.ttl_s and (entry.models is not None or age < self.min_interval_s):
                return entry.models
        try:
            # A model list proves the key works, not that credits remain: credits unchanged.
            models: list[str] | None = await provider.list_models(credential)
            error = None
        except GatewayError as exc:
            models, error = None, exc.code
            self.observe(user_id, provider.name, exc)
        self._cache[key] = _Entry(fingerprint, now, models, error)
        return models

    def observe(self, user_id: str, provider: str, exc: GatewayError | None) -> None:
        """What a call tells us of the user's credits at this provider."""
        key = (user_id, provider)
        if exc is None:
            self._credits[key] = "available"
        elif isinstance(exc, UpstreamError) and "credit" in exc.message:
            self._credits[key] = "exhausted"
        elif isinstance(exc, RateLimited):
            exhausted = "quota" in exc.message.lower() or "credit" in exc.message.lower()
            self._credits[key] = "exhausted" if exhausted else "rate_limited"

    def credits(self, user_id: str, provider: str) -> str:
        return self._credits.get((user_id, provider), "unknown")
