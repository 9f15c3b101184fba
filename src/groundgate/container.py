"""The composition root: builds the services (providers, catalog, store, traces, limits,
cache, retrieval) and the pipelines from Settings, starts and stops them. Wiring only: requests
run through ``groundgate.pipeline``. Used by the HTTP API and by the CLI alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import orjson

from groundgate import __version__
from groundgate.agents.reaper import RunReaper
from groundgate.agents.service import Agents
from groundgate.cache.setup import build_response_cache, targets_of
from groundgate.config import Settings
from groundgate.errors import ConfigError, InvalidRequest
from groundgate.gateway.admission import Admission
from groundgate.gateway.feedback_rate import FeedbackRate
from groundgate.gateway.principal import Principal
from groundgate.gateway.ratelimit import build_rate_limiter
from groundgate.guards.review_queue import ReviewQueue
from groundgate.observe.cost import PriceTable
from groundgate.observe.drift import build_drift_monitor
from groundgate.observe.drift_metrics import DriftMetrics
from groundgate.observe.eval_metrics import EvalMetrics, EvalMetricsRefresher
from groundgate.observe.feedback import FeedbackRecorder
from groundgate.observe.feedback_metrics import FeedbackMetrics
from groundgate.observe.metrics import Metrics
from groundgate.observe.otel import build_otel
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.observe.trace_writer import TraceWriter
from groundgate.observe.traceparent import RemoteParent
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.registry import build_pipelines
from groundgate.pipeline.requests import ask_request, chat_request, request_timeout_s
from groundgate.pipeline.runner import Flight
from groundgate.pipeline.services import Services
from groundgate.pipeline.stages.record import mark_error
from groundgate.prompts.registry import PromptRegistry, configured_refs
from groundgate.providers.base import ChatCall, Embeddings, ManagedProvider, Usage
from groundgate.providers.catalog import Catalog
from groundgate.providers.registry import build_provider
from groundgate.reliability.fallback import FallbackChain
from groundgate.reliability.resilience import Resilience
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.retrieval.ingest import Ingestor
from groundgate.retrieval.rerank_factory import build_rerankers
from groundgate.retrieval.search import Retriever
from groundgate.store import Store, open_store
from groundgate.store.pruner import Pruner
from groundgate.tools.registry import ToolRegistry

log = logging.getLogger("groundgate")
# How often each worker publishes its cache and trace-backlog gauges in multiprocess mode.
_HOLDINGS_EVERY_S = 5.0


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, ManagedProvider] = {
            name: build_provider(name, cfg, settings) for name, cfg in settings.providers.items()
        }
        self.catalog = Catalog(settings, self.providers)
        self.prices = PriceTable(settings.prices)
        self.store: Store = open_store(settings.store)
        self.traces = TraceWriter(self.store, settings.traces)
        self.metrics = Metrics(self._known_model)
        self.otel = build_otel(settings, self.metrics.registry, self._known_model, __version__)
        self.pruner = Pruner(self.store.retention, settings.retention, self.metrics)
        redis_url = os.environ.get(settings.limits.redis_url_env)
        if settings.limits.backend == "redis" and not redis_url:
            raise ConfigError(
                [f"limits.backend is 'redis' but {settings.limits.redis_url_env} is not set"],
                source="environment",
            )
        self.limiter = build_rate_limiter(settings.limits.backend, redis_url)
        self.admission = Admission(self.limiter, settings.limits)
        self.feedback_rate = FeedbackRate(
            self.limiter, settings.feedback.requests_per_minute, fail_open=settings.limits.fail_open
        )
        self.resilience = Resilience(settings.reliability, self.metrics.breaker_changed)
        self.metrics.deployments_are(
            sorted({dep.id for entry in self.catalog.entries() for dep in entry.deployments})
        )
        self.chain = FallbackChain(self.catalog, settings, self.resilience)
        self.embeddings = {
            # Small batches, several in flight: that keeps both CPU threads of the local model
            # busy and pads short texts less (measured: 16 → 31 texts/s on 2 cores).
            entry.name: EmbeddingService(
                entry,
                self.store.knowledge,
                self.chain,
                max_batch=min(16, settings.embedders[entry.name].max_batch),
                parallel=max(4, 2 * settings.local.threads),
            )
            for entry in self.catalog.entries()
            if entry.kind == "embedding"
        }
        self.retriever: Retriever = Retriever(
            self.store.knowledge, self.embeddings, build_rerankers(settings, self.embeddings)
        )
        self.cache = build_response_cache(
            settings, self.store.knowledge, self.embeddings, self.prices, self.metrics
        )
        # Always a monitor (``drift.record_feedback`` is safe to call); the pipelines get it
        # only when it watches something, so drift off costs the request path nothing.
        self.drift = build_drift_monitor(
            settings.drift,
            [*settings.apps, *settings.models],
            settings.embedders,
            DriftMetrics(self.metrics.registry) if settings.drift.enabled else None,
        )
        self.feedback = FeedbackRecorder(
            self.store.feedback,
            FeedbackMetrics(self.metrics.registry, self._known_model),
            on_score=self.drift.record_feedback,
        )
        self.reviews = ReviewQueue(self.store.reviews, feedback=self.feedback)
        # Reads HTTP tools' and MCP servers' env:VAR secrets now (a missing one: ConfigError).
        self.tools = ToolRegistry(settings, self.retriever, self.store.knowledge)
        # Prompt files are read here, so a bad one stops the gateway before it binds.
        self.prompts = PromptRegistry.load(settings.prompts, self.store.prompts)
        self.prompts.check_names(configured_refs(settings))
        self.eval_metrics = EvalMetricsRefresher(
            self.store.eval_runs, EvalMetrics(self.metrics.registry)
        )
        # Agent runs: started by the agent stages, decided through /v1/runs and the CLI.
        self.agents = Agents(
            settings,
            self.catalog,
            self.chain,
            self.prices,
            self.store.runs,
            self.traces,
            self.embeddings,
            self.tools,
        )
        self.pipelines = build_pipelines(
            Services(
                settings=settings,
                catalog=self.catalog,
                chain=self.chain,
                retriever=self.retriever,
                cache=self.cache,
                prices=self.prices,
                metrics=self.metrics,
                traces=self.traces,
                admission=self.admission,
                store=self.store,
                embeddings=self.embeddings,
                reviews=self.reviews,
                prompts=self.prompts,
                drift=self.drift if self.drift.targets else None,
                otel=self.otel,
                tools=self.tools,
                agents=self.agents,
            )
        )
        self._holdings_task: asyncio.Task[None] | None = None
        self.started = False

    async def clear_cache(self, tenant: str, target: str | None = None) -> int:
        return await self.cache.backend.clear(tenant, target) if self.cache is not None else 0

    async def knowledge_changed(self, tenant: str, kb: str) -> None:
        """Called before a change to ``kb`` is acknowledged: answers keyed by its old version
        could no longer be served anyway; this frees their room at once."""
        if self.cache is not None:
            await self.cache.forget(tenant, targets_of(self.settings, kb))

    def _measure_holdings(self) -> None:
        """Gauges of what this process holds, read when they are wanted rather than kept."""
        if self.cache is not None:
            stats = self.cache.backend.stats()
            self.metrics.cache_usage(stats.entries, stats.bytes, stats.evictions)
        self.metrics.trace_backlog_is(self.traces.backlog)
        self.metrics.dropped_is("store", self.traces.dropped)
        if self.otel is not None:
            self.metrics.dropped_is("otlp", self.otel.dropped_traces)
        self.metrics.queues_are(
            {
                name: (bulkhead.in_flight, bulkhead.waiting)
                for name, bulkhead in self.resilience.bulkheads().items()
            },
            self.admission.waiting,
        )

    async def _measure_holdings_forever(self) -> None:
        # With several workers a scrape reaches one, which reads the others' last values.
        while True:
            await asyncio.sleep(_HOLDINGS_EVERY_S)
            self._measure_holdings()

    def render_metrics(self, *, public: bool = False) -> bytes:
        self._measure_holdings()
        return self.metrics.render(public=public)

    def ingestor(self, kb: str) -> Ingestor:
        config = self.settings.kb_config(kb)
        embeddings = self.embeddings.get(config.embedder) if config.embedder else None
        return Ingestor(self.store.knowledge, embeddings, config)

    async def start(self) -> None:
        await self.store.open()
        try:
            # Labels live in the store: an app's prompt is known to exist only once it is open.
            await self.prompts.check(configured_refs(self.settings))
        except BaseException:
            await self.store.close()
            raise
        # Runs a stopped gateway left in flight are failed before this one serves any.
        await self._settle_runs()
        used = {dep.provider.name for entry in self.catalog.entries() for dep in entry.deployments}
        await asyncio.gather(*(p.start() for n, p in self.providers.items() if n in used))
        self.traces.start()
        # MCP servers connect here; one that fails leaves its tools out (logged, in /readyz).
        await self.tools.start()
        if self.settings.retention.enabled:
            self.pruner.start()
        if self.metrics.multiprocess:
            self._holdings_task = asyncio.create_task(self._measure_holdings_forever())
        self.eval_metrics.start()
        self.started = True

    async def _settle_runs(self) -> None:
        try:
            await RunReaper(self.store.runs, self.settings.apps).settle()
        except Exception:  # housekeeping: the next start tries again
            log.exception("settling the agent runs left behind failed")

    async def stop(self) -> None:
        await self.pruner.aclose()
        await self.eval_metrics.aclose()
        if self._holdings_task is not None:
            self._holdings_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._holdings_task
            self._holdings_task = None
        await self.tools.close()
        await self.agents.aclose()
        await self.traces.aclose()
        if self.otel is not None:
            await self.otel.aclose()
        await self.limiter.aclose()
        if self.cache is not None:
            await self.cache.backend.aclose()
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)
        await asyncio.gather(*(e.drain() for e in self.embeddings.values()))
        await self.store.close()
        self.metrics.close()
        self.started = False

    # -- requests ------------------------------------------------------------------------

    def request_timeout_s(self, requested: float | None) -> float:
        return request_timeout_s(self.settings, requested)

    def new_chat(
        self,
        model: str,
        call: ChatCall,
        *,
        stream: bool = False,
        include_usage: bool = False,
        timeout_s: float | None = None,
        principal: Principal | None = None,
        session: str | None = None,
        tier: str | None = None,
    ) -> RequestContext:
        return chat_request(
            self.settings,
            model,
            call,
            stream=stream,
            include_usage=include_usage,
            timeout_s=timeout_s,
            principal=principal,
            session=session,
            tier=tier,
        )

    def new_ask(self, question: str, **options: Any) -> RequestContext:
        """See :func:`groundgate.pipeline.requests.ask_request`."""
        return ask_request(self.settings, question, **options)

    async def complete(self, ctx: RequestContext) -> None:
        """Answer a whole (not streamed) request: ``ctx.completion`` holds the answer."""
        await self.pipelines.for_request(ctx).complete(ctx)

    async def open(self, ctx: RequestContext) -> Flight:
        """Start a request; its :class:`Flight` streams the answer and must be closed."""
        return await self.pipelines.for_request(ctx).open(ctx)

    def _known_model(self, name: str) -> bool:
        return (
            name in self.settings.models
            or name in self.settings.embedders
            or name in self.settings.apps
        )

    # -- embeddings ---------------------------------------------------------------------

    async def embed(
        self,
        model: str,
        inputs: list[str],
        *,
        tenant: str = "default",
        key_id: str | None = None,
        timeout_s: float | None = None,
        parent: RemoteParent | None = None,
    ) -> tuple[Trace, str, Embeddings]:
        trace = Trace(
            id=new_trace_id(), tenant=tenant, endpoint="embeddings", model=model, key_id=key_id
        )
        trace.parent = parent
        deadline = time.monotonic() + self.request_timeout_s(timeout_s)
        error: BaseException | None = None
        try:
            entry = self.catalog.get(model, "embedding")
            if not inputs:
                raise InvalidRequest("'input' must not be empty", param="input")
            max_batch = self.settings.embedders[model].max_batch
            vectors: list[list[float]] = []
            usage = Usage()
            deployment_id = ""
            for start in range(0, len(inputs), max_batch):
                batch = inputs[start : start + max_batch]
                deployment, result = await self.chain.embed(entry, batch, deadline, trace)
                deployment_id = deployment.id
                vectors.extend(result.vectors)
                usage.prompt_tokens += result.usage.prompt_tokens
            trace.deployment, trace.source = deployment_id, "model"
            trace.prompt_tokens = usage.prompt_tokens
            trace.cost_usd = self.prices.cost(deployment_id, usage)
            return trace, deployment_id, Embeddings(vectors, usage)
        except BaseException as exc:
            error = exc
            raise
        finally:
            trace.latency_ms = trace.elapsed_ms()
            mark_error(trace, error)
            self.metrics.observe(trace)
            self.traces.submit(trace)
            if self.otel is not None:
                self.otel.submit(trace)

    # -- reads --------------------------------------------------------------------------

    async def get_trace(self, tenant: str, trace_id: str) -> dict[str, Any] | None:
        pending = self.traces.pending(trace_id)
        if pending is not None and pending.tenant == tenant:
            data: dict[str, Any] = orjson.loads(pending.to_json())  # scrubbed, as stored
            return data
        return await self.store.get_trace(tenant, trace_id)

    async def readiness(self) -> dict[str, Any]:
        store_ok = await self.store.ping()
        providers = {}
        for name, provider in self.providers.items():
            ok, reason = provider.readiness()
            providers[name] = {"ready": ok, "detail": reason}
        ready = store_ok and any(p["ready"] for p in providers.values())
        return {
            "ready": ready,
            "store": {"ready": store_ok, "type": self.settings.store.type},
            "providers": providers,
            "traces": {"backlog": self.traces.backlog, "dropped": self.traces.dropped},
            "otel": self.otel.stats() if self.otel is not None else {"enabled": False},
            "deployments": self.resilience.snapshot(),
            # MCP servers' state; informational: a failed server does not make us unready.
            "tools": self.tools.status(),
        }
