"""Prometheus metrics, recorded once per finished request from its trace (one place, so a
route cannot forget to count) and from breaker transitions.

Labels are bounded by configuration (deployments, models, apps, tiers) and code (endpoints,
statuses, sources, error classes), never by client input: a model name the catalog does not
know is counted as ``unknown``, and no label ever holds a key, a tenant, a prompt or a path.
Each metric's label sets are capped besides (observe/metric_labels.py). Names follow
Prometheus' conventions: base units in the name (``_seconds``, ``_bytes``, ``_usd``),
counters exposed with ``_total``.

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

from groundgate.observe.metric_labels import MAX_LABEL_SETS, BoundedChildren, Labelled
from groundgate.observe.trace import Trace

# Breaker states by name (reliability/breaker.py's BreakerState values).
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
# A request's whole time: a cache hit in milliseconds, a long generation in a minute or two.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Time to first token: what a streaming user waits for; finer where it matters (< 2 s).
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
# Guards run on the request path in milliseconds: finer buckets than a request's.
_GUARD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Families left out of /metrics when it is served without a key (server.public_metrics).
_PRIVATE = frozenset(
    {"groundgate_cost_usd", "groundgate_route_estimated_usd", "groundgate_eval_cost_usd"}
)
_NONE = "none"  # a label with nothing to say (no app, no tier, no source)
_UNKNOWN = "unknown"  # a name the configuration does not know (the client's own text)
# An ad-hoc /v1/ask over a knowledge base is traced as app "kb:NAME": the name is the
# client's, so the label says only that it was ad hoc.
_ADHOC_PREFIX = "kb:"
_ADHOC = "adhoc"


class Metrics:
    def __init__(
        self, known_models: Callable[[str], bool], *, max_label_sets: int = MAX_LABEL_SETS
    ) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        self._known = known_models
        self._bounded = BoundedChildren(max_label_sets)
        # Running totals kept elsewhere (evictions, dropped traces), last seen: counters
        # advance by the difference.
        self._seen_totals: dict[tuple[int, tuple[str, ...]], float] = {}
        r = self.registry
        self.requests = Counter(
            "groundgate_requests",
            "Finished requests by endpoint, the model or app named, the app, the tier that "
            "answered, outcome (status: ok, error, cancelled, held), HTTP code and source.",
            ["endpoint", "model", "app", "tier", "status", "code", "source"],
            registry=r,
        )
        self.latency = Histogram(
            "groundgate_request_duration_seconds",
            "Time from request to last byte.",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "groundgate_time_to_first_token_seconds",
            "Streamed requests: time from request to the first content sent.",
            ["endpoint", "model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "groundgate_upstream_attempts",
            "Upstream tries by deployment and outcome (ok, error, skipped).",
            ["deployment", "outcome"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "groundgate_upstream_errors",
            "Failed or skipped upstream tries by deployment and error class (connection, "
            "timeout, server_error, unavailable, rate_limited, auth, rejected, context_window, "
            "content_filter, upstream_error, deadline; not tried: breaker_open, overloaded).",
            ["deployment", "error"],
            registry=r,
        )
        self.tokens = Counter(
            "groundgate_tokens",
            "Tokens by deployment, model or app named, and kind (prompt, completion).",
            ["deployment", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "groundgate_cost_usd",
            "Upstream cost in USD by deployment and model or app named.",
            ["deployment", "model"],
            registry=r,
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
        self.traces_dropped = Counter(
            "groundgate_traces_dropped",
            "Traces dropped because a sink's queue was full (store: the trace store; an "
            "exporter by name).",
            ["sink"],
            registry=r,
        )
        self.bulkhead_waiting = Gauge(
            "groundgate_bulkhead_waiting",
            "Upstream calls queued for a slot of a deployment's bulkhead.",
            ["deployment"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.bulkhead_in_flight = Gauge(
            "groundgate_bulkhead_in_flight",
            "Upstream calls in flight in a deployment's bulkhead.",
            ["deployment"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.admission_waiting = Gauge(
            "groundgate_admission_waiting",
            "Requests queued at admission for rate-limit room (limits.queue_ms).",
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
        self.cache_evictions = Counter(
            "groundgate_cache_evictions",
            "Cached answers dropped for room.",
            registry=r,
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
            "Rows deleted by retention, by kind (the tables of [retention]: traces, ...).",
            ["kind"],
            registry=r,
        )
        self.retention_last_run = Gauge(
            "groundgate_retention_last_run_timestamp_seconds",
            "When this process last finished a retention run (Unix time; 0: not yet).",
            registry=r,
        )

    def _name(self, name: str) -> str:
        """A model or app name as a label: the configured ones, else ``unknown``."""
        return name if self._known(name) else _UNKNOWN

    def _app(self, app: Any) -> str:
        if not isinstance(app, str):
            return _NONE
        if app.startswith(_ADHOC_PREFIX):
            return _ADHOC
        return self._name(app)

    def observe(self, trace: Trace) -> None:
        model = self._name(trace.model)
        child = self._child
        route = trace.attrs.get("route")
        tier = route.get("tier") if route else None
        child(
            self.requests,
            trace.endpoint,
            model,
            self._app(trace.attrs.get("app")),
            tier if isinstance(tier, str) else _NONE,
            trace.status,
            str(trace.http_status),
            trace.source or _NONE,
        ).inc()
        child(self.latency, trace.endpoint, model).observe(trace.latency_ms / 1000)
        if trace.stream and trace.ttft_ms is not None:
            child(self.ttft, trace.endpoint, model).observe(trace.ttft_ms / 1000)
        for attempt in trace.attempts:
            child(self.attempts, attempt.deployment, attempt.status).inc()
            if attempt.status != "ok":
                kind = attempt.error_class or "upstream_error"
                child(self.upstream_errors, attempt.deployment, kind).inc()
        if trace.deployment:
            child(self.tokens, trace.deployment, model, "prompt").inc(trace.prompt_tokens)
            child(self.tokens, trace.deployment, model, "completion").inc(trace.completion_tokens)
            if trace.cost_usd:
                child(self.cost, trace.deployment, model).inc(trace.cost_usd)
        guards = trace.attrs.get("guards")
        if guards:
            self._guards(guards)
        variant = trace.attrs.get("variant")
        if variant:
            # Written by the split stage from config names only: the label set is bounded.
            child(self.variant_requests, variant["target"], variant["name"]).inc()
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

    def _child(self, metric: Labelled, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered, with the metric's label sets capped (see
        observe/metric_labels.py): every labelled metric is fed through here."""
        return self._bounded.get(metric, labels)

    def _advance(self, counter: Any, labels: tuple[str, ...], total: float) -> None:
        """Bring a counter up to a running total kept elsewhere (it only ever grows)."""
        key = (id(counter), labels)
        # The child is made even at 0: an alert on the rate sees 0, not an absent series.
        child = self._child(counter, *labels) if labels else counter
        grown = total - self._seen_totals.get(key, 0.0)
        if grown > 0:
            self._seen_totals[key] = total
            child.inc(grown)

    def cache_lookup(self, target: str, result: str) -> None:
        self._child(self.cache_lookups, self._name(target), result).inc()

    def cache_guard_rejection(self, target: str, rule: str) -> None:
        self._child(self.cache_guard, self._name(target), rule).inc()

    def cache_usage(self, entries: int, used_bytes: int, evictions: int) -> None:
        self.cache_entries.set(entries)
        self.cache_bytes.set(used_bytes)
        self._advance(self.cache_evictions, (), evictions)

    def queues_are(self, bulkheads: dict[str, tuple[int, int]], admission_waiting: int) -> None:
        """Queue depths: per deployment (in flight, waiting) in its bulkhead, and admission's."""
        for deployment, (in_flight, waiting) in bulkheads.items():
            self._child(self.bulkhead_in_flight, deployment).set(in_flight)
            self._child(self.bulkhead_waiting, deployment).set(waiting)
        self.admission_waiting.set(admission_waiting)

    def dropped_is(self, sink: str, total: int) -> None:
        """``sink`` (the trace store, an exporter) has dropped ``total`` traces since start."""
        self._advance(self.traces_dropped, (sink,), total)

    def pruned(self, kind: str, rows: int) -> None:
        self._child(self.retention_pruned, kind).inc(rows)

    def pruning_ran(self, at: float) -> None:
        self.retention_last_run.set(at)

    def deployments_are(self, deployments: Iterable[str]) -> None:
        """Every configured deployment's breaker starts closed: its series exists (and the
        dashboard's row) before the first state change."""
        for deployment in deployments:
            self._child(self.breaker, deployment).set(_BREAKER_VALUE["closed"])

    def breaker_changed(self, deployment: str, old: str, new: str) -> None:
        self._child(self.breaker, deployment).set(_BREAKER_VALUE[new])
        self._child(self.transitions, deployment, str(new)).inc()

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
