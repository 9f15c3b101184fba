"""Prometheus metrics, recorded once per finished request from its trace (one place, so a
route cannot forget to count) and from breaker transitions.

Labels are bounded by configuration (deployments, endpoints, sources), never by client input:
a model name the catalog does not know is counted as ``unknown``.

Several workers share one port, so a scrape reaches any one of them: with
``PROMETHEUS_MULTIPROC_DIR`` set (``groundgate serve --workers N`` sets it to a fresh folder
before the workers start), every worker writes its values there and a scrape adds them all up
(prometheus-client's multiprocess mode). One worker keeps its values in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from groundgate.observe.trace import Trace

# Breaker states by name (reliability/breaker.py's BreakerState values).
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Guards run on the request path in milliseconds: finer buckets than a request's.
_GUARD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Families left out of /metrics when it is served without a key (server.public_metrics).
_PRIVATE = frozenset({"groundgate_cost_usd", "groundgate_route_estimated_usd"})


class _Labelled(Protocol):
    def labels(self, *labelvalues: str) -> Any: ...


class Metrics:
    def __init__(self, known_models: Callable[[str], bool]) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        self._known = known_models
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "groundgate_requests",
            "Finished requests.",
            ["endpoint", "model", "status", "source"],
            registry=r,
        )
        self.latency = Histogram(
            "groundgate_request_duration_seconds",
            "Time from request to last byte.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "groundgate_upstream_attempts",
            "Upstream tries by deployment and outcome.",
            ["deployment", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "groundgate_tokens", "Tokens by deployment.", ["deployment", "kind"], registry=r
        )
        self.cost = Counter(
            "groundgate_cost_usd", "Upstream cost in USD.", ["deployment"], registry=r
        )
        self.breaker = Gauge(
            "groundgate_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open (the most open of the workers').",
            ["deployment"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.transitions = Counter(
            "groundgate_breaker_transitions",
            "Circuit breaker state changes.",
            ["deployment", "to"],
            registry=r,
        )
        # Gauges of what each worker holds add up over the workers that are alive.
        self.trace_backlog = Gauge(
            "groundgate_trace_backlog",
            "Traces waiting to be written.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_lookups = Counter(
            "groundgate_cache_lookups",
            "Response-cache lookups by app or model and result (exact, semantic, miss, "
            "bypass, error).",
            ["target", "result"],
            registry=r,
        )
        self.cache_guard = Counter(
            "groundgate_cache_guard_rejections",
            "Semantic-cache candidates vetoed by the false-hit guard, by rule.",
            ["target", "rule"],
            registry=r,
        )
        self.cache_entries = Gauge(
            "groundgate_cache_entries", "Cached answers.", registry=r, multiprocess_mode="livesum"
        )
        self.cache_bytes = Gauge(
            "groundgate_cache_bytes",
            "Approximate memory used by cached answers.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_evictions = Gauge(
            "groundgate_cache_evictions",
            "Cached answers dropped for room since start (a count; a gauge because the cache "
            "backend keeps it).",
            registry=r,
            multiprocess_mode="livesum",
        )

        self.guard_decisions = Counter(
            "groundgate_guard_decisions",
            "Guard decisions by guard and action (flag, redact, block, review, fence, ...).",
            ["guard", "action"],
            registry=r,
        )
        self.guard_seconds = Histogram(
            "groundgate_guard_check_duration_seconds",
            "Time spent in each guard's check, per request that ran it.",
            ["guard"],
            buckets=_GUARD_BUCKETS,
            registry=r,
        )

        self.variant_requests = Counter(
            "groundgate_variant_requests",
            "Requests by A/B variant of an app or model (names from config).",
            ["target", "variant"],
            registry=r,
        )
        self.route_decisions = Counter(
            "groundgate_route_decisions",
            "Requests of an app or model with tiers, by the tier that answered and the router "
            "that chose it (pinned: the client's choice).",
            ["target", "tier", "router"],
            registry=r,
        )
        self.route_escalations = Counter(
            "groundgate_route_escalations",
            "Cascade steps from a tier whose answer scored low to the next one.",
            ["target", "from", "to"],
            registry=r,
        )
        self.route_usd = Counter(
            "groundgate_route_estimated_usd",
            "Estimated cost of the routed requests' answers on the top tier (basis "
            "'top_tier') and as routed, discarded cascade answers included ('routed'); the "
            "difference is the estimated saving.",
            ["target", "basis"],
            registry=r,
        )

        self.retention_pruned = Counter(
            "groundgate_retention_pruned_rows",
            "Rows deleted by retention, by kind (traces, embeddings, question_vectors).",
            ["kind"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "groundgate_retention_last_run_timestamp_seconds",
            "When this process last finished a retention run (Unix time; 0: not yet).",
            registry=r,
        )

    def observe(self, trace: Trace) -> None:
        model = trace.model if self._known(trace.model) else "unknown"
        child = self._child
        child(self.requests, trace.endpoint, model, trace.status, trace.source or "none").inc()
        child(self.latency, trace.endpoint).observe(trace.latency_ms / 1000)
        for attempt in trace.attempts:
            child(self.attempts, attempt.deployment, attempt.status).inc()
        if trace.deployment:
            child(self.tokens, trace.deployment, "prompt").inc(trace.prompt_tokens)
            child(self.tokens, trace.deployment, "completion").inc(trace.completion_tokens)
            if trace.cost_usd:
                child(self.cost, trace.deployment).inc(trace.cost_usd)
        guards = trace.attrs.get("guards")
        if guards:
            self._guards(guards)
        variant = trace.attrs.get("variant")
        if variant:
            # Written by the split stage from config names only: the label set is bounded.
            child(self.variant_requests, variant["target"], variant["name"]).inc()
        route = trace.attrs.get("route")
        if route:
            app = trace.attrs.get("app")
            target = app if isinstance(app, str) and self._known(app) else model
            self._route(target, route)

    def _guards(self, summary: dict[str, Any]) -> None:
        # Guard and action names come from code, not from clients: the label sets are bounded.
        child = self._child
        for decision in summary.get("decisions", ()):
            child(self.guard_decisions, decision["guard"], decision["action"]).inc()
        for guard, ms in summary.get("checked_ms", {}).items():
            child(self.guard_seconds, guard).observe(ms / 1000)

    def _route(self, target: str, summary: dict[str, Any]) -> None:
        # Tier names come from config (checked against the target's tiers), routers from code.
        child = self._child
        child(self.route_decisions, target, summary["tier"], summary["router"]).inc()
        for step in summary.get("escalations", ()):
            if "error" not in step:
                child(self.route_escalations, target, step["from"], step["to"]).inc()
        saved = summary.get("saved_usd")
        routed = summary.get("estimated_usd")
        if saved is not None and routed is not None:
            child(self.route_usd, target, "top_tier").inc(max(routed + saved, 0.0))
            child(self.route_usd, target, "routed").inc(routed)

    def _child(self, metric: _Labelled, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: ``labels`` takes a lock and builds its key
        on every call, and every request makes several. The label values are bounded (see the
        module docstring), so this map is too."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def cache_lookup(self, target: str, result: str) -> None:
        self.cache_lookups.labels(target if self._known(target) else "unknown", result).inc()

    def cache_guard_rejection(self, target: str, rule: str) -> None:
        self.cache_guard.labels(target if self._known(target) else "unknown", rule).inc()

    def cache_usage(self, entries: int, used_bytes: int, evictions: int) -> None:
        self.cache_entries.set(entries)
        self.cache_bytes.set(used_bytes)
        self.cache_evictions.set(evictions)

    def pruned(self, kind: str, rows: int) -> None:
        self.retention_pruned.labels(kind).inc(rows)

    def pruning_ran(self, at: float) -> None:
        self.retention_last_run.set(at)

    def breaker_changed(self, deployment: str, old: str, new: str) -> None:
        self.breaker.labels(deployment).set(_BREAKER_VALUE[new])
        self.transitions.labels(deployment, str(new)).inc()

    def trace_backlog_is(self, traces: int) -> None:
        self.trace_backlog.set(traces)

    def render(self, *, public: bool = False) -> bytes:
        """The exposition text: every worker's values added up in multiprocess mode; without
        spend when ``public``."""
        source: _Collects = self.registry
        if self.multiprocess:
            source = CollectorRegistry()
            MultiProcessCollector(source)  # type: ignore[no-untyped-call]
        if public:
            source = _Without(source, _PRIVATE)
        return bytes(generate_latest(source))

    def close(self) -> None:
        """This worker is going away: its gauges stop counting (its counters stay)."""
        if self.multiprocess:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Collects(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Without:
    def __init__(self, source: _Collects, hidden: frozenset[str]) -> None:
        self.source = source
        self.hidden = hidden

    def collect(self) -> Iterator[Metric]:
        return (m for m in self.source.collect() if m.name not in self.hidden)
