"""Prometheus metrics. Each app owns its own registry (no process globals), so
several apps in one process — tests — never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Children of this instance's metrics by (id of the metric, label values).
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "pluggably_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pluggably_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "pluggably_http_requests_in_flight",
            "HTTP requests being served now.",
            registry=self.registry,
        )

        self.download_bytes = Counter(
            "pluggably_download_bytes",
            "Bytes of model files received by downloads.",
            registry=self.registry,
        )
        self.downloads_active = Gauge(
            "pluggably_downloads_active", "Downloads transferring now.", registry=self.registry
        )
        self.storage_used = Gauge(
            "pluggably_models_storage_bytes",
            "Bytes under the models directory (refreshed at most every 30 s).",
            registry=self.registry,
        )
        self.storage_limit = Gauge(
            "pluggably_models_storage_limit_bytes",
            "The models storage quota (0: none configured).",
            registry=self.registry,
        )

        self.models_loaded = Gauge(
            "pluggably_models_loaded", "Local models loaded now.", registry=self.registry
        )
        self.model_events = Counter(
            "pluggably_model_events",
            "Local model lifecycle events: load, load_failed, unload, evict, idle_unload.",
            ["event"],
            registry=self.registry,
        )
        self.model_event_seconds = Histogram(
            "pluggably_model_event_duration_seconds",
            "How long loads and unloads of local models take.",
            ["event"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "pluggably_queue_depth",
            "Requests waiting for a slot of a local model.",
            ["model"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "pluggably_queue_wait_seconds",
            "Time requests waited in a local model's queue.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens_per_second = Histogram(
            "pluggably_local_tokens_per_second",
            "Generation speed of local text models (completion tokens / generation time).",
            ["model"],
            buckets=(1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
            registry=self.registry,
        )

        self.generation_requests = Counter(
            "pluggably_generation_requests",
            "Completed generations by provider and model.",
            ["provider", "model"],
            registry=self.registry,
        )
        self.generation_errors = Counter(
            "pluggably_generation_errors",
            "Failed generation attempts by provider and error code.",
            ["provider", "code"],
            registry=self.registry,
        )
        self.generation_latency = Histogram(
            "pluggably_generation_duration_seconds",
            "Generation latency by provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.generation_ttft = Histogram(
            "pluggably_generation_first_token_seconds",
            "Time to the first streamed token by provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.generation_tokens = Counter(
            "pluggably_generation_tokens",
            "Tokens by provider and kind (prompt, completion).",
            ["provider", "kind"],
            registry=self.registry,
        )
        # Per model (the model label is bounded, as for generation_requests); never per
        # user: a user's own spend is in GET /v1/usage.
        self.usage_tokens = Counter(
            "pluggably_usage_tokens",
            "Tokens of answered requests by provider, model and kind (prompt, completion).",
            ["provider", "model", "kind"],
            registry=self.registry,
        )
        self.usage_cost = Counter(
            "pluggably_usage_cost_usd",
            "Spend in US dollars at the gateway's prices by provider and model (answers "
            "of unpriced models add nothing).",
            ["provider", "model"],
            registry=self.registry,
        )

        self.limit_refusals = Counter(
            "pluggably_limit_refusals",
            "Requests refused by a limit, by code (rate_limited, budget_exceeded, "
            "model_not_allowed).",
            ["code"],
            registry=self.registry,
        )

        # Endpoint pools (providers/pool.py); ``url`` is a member's URL without
        # credentials or query.
        self.endpoint_pool_in_flight = Gauge(
            "pluggably_endpoint_pool_in_flight",
            "Calls this process has in flight to each server of an endpoint pool.",
            ["endpoint", "url"],
            registry=self.registry,
        )
        self.endpoint_pool_up = Gauge(
            "pluggably_endpoint_pool_up",
            "1 while a server of an endpoint pool takes calls first; 0 while it is down "
            "(its health check failed) or cooling down after failed calls.",
            ["endpoint", "url"],
            registry=self.registry,
        )
        self.endpoint_pool_failovers = Counter(
            "pluggably_endpoint_pool_failovers",
            "Calls that moved on to another server of an endpoint pool after a failure.",
            ["endpoint"],
            registry=self.registry,
        )

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per label combination (labels()
        takes a lock and re-checks its arguments on every call)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.child(self.requests, method, route, str(status)).inc()
        self.child(self.latency, method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
