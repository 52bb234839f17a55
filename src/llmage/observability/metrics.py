"""Prometheus metrics. One registry per process; names are stable for dashboards."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "llmage_requests_total",
    "HTTP requests by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "llmage_request_seconds",
    "Time to response headers, by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "llmage_upstream_errors_total",
    "Upstream failures by provider and kind",
    ["provider", "kind"],
    registry=REGISTRY,
)
HOLDS = Counter(
    "llmage_holds_total",
    "Holds by outcome: opened, captured, released, rejected",
    ["outcome"],
    registry=REGISTRY,
)
OPEN_HOLDS = Gauge(
    "llmage_open_holds", "Holds opened by this process and not yet settled", registry=REGISTRY
)
CHARGED = Counter(
    "llmage_charged_micros_total", "Money captured, micro-units", ["kind"], registry=REGISTRY
)
TOKENS = Counter("llmage_tokens_total", "Tokens billed", ["model", "direction"], registry=REGISTRY)
# Per channel: health, latency and errors of upstream calls (task and chat). `outcome` is "ok" or
# an error kind (domain.errors.UpstreamKind), so a dashboard can tell channel problems (auth,
# model_not_enabled, upstream_quota) from the user's own (bad_request, input_moderation).
CHANNEL_CALLS = Counter(
    "llmage_channel_calls_total",
    "Upstream calls per channel, operation and outcome",
    ["channel", "op", "outcome"],
    registry=REGISTRY,
)
CHANNEL_LATENCY = Histogram(
    "llmage_channel_call_seconds",
    "Upstream call latency per channel and operation",
    ["channel", "op"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
CHANNEL_HEALTHY = Gauge(
    "llmage_channel_healthy",
    "1 while a channel's last upstream call did not fail for a channel problem (or open its "
    "breaker), else 0",
    ["channel"],
    registry=REGISTRY,
)
CHANNEL_BREAKER = Gauge(
    "llmage_channel_breaker_state",
    "Circuit breaker per channel in this process: 0 closed, 1 half-open, 2 open",
    ["channel"],
    registry=REGISTRY,
)
LIMITS_BACKEND = Gauge(
    "llmage_limits_backend",
    "Where rate and concurrency limits are counted: 1 for the backend in use (redis, local)",
    ["backend"],
    registry=REGISTRY,
)
INVALIDATION = Gauge(
    "llmage_invalidation_connected",
    "1 while this instance receives cache invalidations from other instances (Redis pub/sub)",
    registry=REGISTRY,
)
