"""The composition root: builds providers, catalog, store, trace writer and pipelines from
Settings, and runs requests through them. Used by the HTTP API and by the CLI alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from groundgate.cache.answer import StreamRecorder
from groundgate.cache.setup import build_response_cache, cache_policy, caches, targets_of
from groundgate.cache.stage import CacheLookup, CacheWrite
from groundgate.config import AppConfig, Settings
from groundgate.config_cache import CachePolicy
from groundgate.errors import ConfigError, GroundgateError, InvalidRequest, NotFound
from groundgate.gateway.admission import Admission
from groundgate.gateway.metering import StreamMeter, estimate_completion
from groundgate.gateway.ratelimit import build_rate_limiter
from groundgate.observe.cost import PriceTable
from groundgate.observe.metrics import Metrics
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.observe.trace_writer import TraceWriter
from groundgate.pipeline.cite import Cite, resolve_citations
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.generate import Generate
from groundgate.pipeline.stage import Pipeline
from groundgate.prompts.stage import AssemblePrompt
from groundgate.providers.base import ChatCall, Chunk, Embeddings, ManagedProvider, Usage
from groundgate.providers.catalog import Catalog
from groundgate.providers.registry import build_provider
from groundgate.reliability.fallback import DeadlineExceeded, FallbackChain
from groundgate.reliability.held_stream import close_quietly
from groundgate.reliability.resilience import Resilience
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.retrieval.ingest import Ingestor
from groundgate.retrieval.rerank_factory import build_rerankers
from groundgate.retrieval.search import Retriever
from groundgate.retrieval.stage import Retrieve, RewriteQuery
from groundgate.routing.resolve import ResolveModel
from groundgate.shielded import shielded
from groundgate.store import Store, open_store
from groundgate.store.pruner import Pruner

log = logging.getLogger("groundgate")
# How often each worker publishes its cache and trace-backlog gauges in multiprocess mode.
_HOLDINGS_EVERY_S = 5.0


class Runtime:
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
        self.pruner = Pruner(self.store.retention, settings.retention, self.metrics)
        redis_url = os.environ.get(settings.limits.redis_url_env)
        if settings.limits.backend == "redis" and not redis_url:
            raise ConfigError(
                [f"limits.backend is 'redis' but {settings.limits.redis_url_env} is not set"],
                source="environment",
            )
        self.limiter = build_rate_limiter(settings.limits.backend, redis_url)
        self.admission = Admission(self.limiter, settings.limits)
        self.resilience = Resilience(settings.reliability, self.metrics.breaker_changed)
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
        lookup: list[CacheLookup] = []
        write: list[CacheWrite] = []
        if self.cache is not None:
            lookup, write = [CacheLookup(self.cache, self.cache_policy)], [CacheWrite(self.cache)]
        # Models whose config leaves the cache off skip its stages (and their spans).
        self.chat_pipeline = Pipeline([ResolveModel(self.catalog), Generate(self.chain)])
        self.cached_chat_pipeline = Pipeline(
            [ResolveModel(self.catalog), *lookup, Generate(self.chain), *write]
        )
        # Grounded apps walk the full path; plain models skip the retrieval stages.
        self.app_pipeline = Pipeline(
            [
                ResolveModel(self.catalog),
                *lookup,
                RewriteQuery(),
                Retrieve(self.retriever, settings),
                AssemblePrompt(),
                Generate(self.chain),
                Cite(),
                *write,
            ]
        )
        self._holdings_task: asyncio.Task[None] | None = None
        self.started = False

    def cache_policy(self, ctx: RequestContext) -> CachePolicy | None:
        return cache_policy(self.settings, ctx)

    def _pipeline_for(self, ctx: RequestContext) -> Pipeline:
        if ctx.app is not None:
            return self.app_pipeline
        return self.cached_chat_pipeline if caches(self.cache_policy(ctx)) else self.chat_pipeline

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
        used = {dep.provider.name for entry in self.catalog.entries() for dep in entry.deployments}
        await asyncio.gather(*(p.start() for n, p in self.providers.items() if n in used))
        self.traces.start()
        if self.settings.retention.enabled:
            self.pruner.start()
        if self.metrics.multiprocess:
            self._holdings_task = asyncio.create_task(self._measure_holdings_forever())
        self.started = True

    async def stop(self) -> None:
        await self.pruner.aclose()
        if self._holdings_task is not None:
            self._holdings_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._holdings_task
            self._holdings_task = None
        await self.traces.aclose()
        await self.limiter.aclose()
        if self.cache is not None:
            await self.cache.backend.aclose()
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)
        await asyncio.gather(*(e.drain() for e in self.embeddings.values()))
        await self.store.close()
        self.metrics.close()
        self.started = False

    # -- chat ---------------------------------------------------------------------------

    def request_timeout_s(self, requested: float | None, app: AppConfig | None = None) -> float:
        """A request's deadline in seconds: the app's, else the server's. The client's
        (``x-groundgate-timeout``) may shorten it, never extend it: a longer one is clamped."""
        ceiling = (app.timeout_s if app is not None else None) or (
            self.settings.server.request_timeout_s
        )
        return ceiling if requested is None else min(requested, ceiling)

    def new_chat(
        self,
        model: str,
        call: ChatCall,
        *,
        stream: bool = False,
        include_usage: bool = False,
        timeout_s: float | None = None,
        tenant: str = "default",
        key_id: str | None = None,
    ) -> RequestContext:
        app = self.settings.apps.get(model)
        ctx = self._new_context(
            model,
            call,
            endpoint="chat.completions",
            timeout_s=self.request_timeout_s(timeout_s, app),
            stream=stream,
            include_usage=include_usage,
            tenant=tenant,
            key_id=key_id,
        )
        if app is not None:
            ctx.app, ctx.app_name = app, model
            ctx.trace.attrs["app"] = model
            _default_temperature(call, app)
        return ctx

    def new_ask(
        self,
        question: str,
        *,
        app: str | None = None,
        kb: str | None = None,
        model: str | None = None,
        top_k: int | None = None,
        filters: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        stream: bool = False,
        timeout_s: float | None = None,
        tenant: str = "default",
        key_id: str | None = None,
    ) -> RequestContext:
        """A grounded question: a named app, or an ad-hoc one over ``kb``.

        A named app's ``top_k`` is a ceiling (a larger one asked for is capped to it) and its
        filters a floor (applied by the retrieve stage); an ad-hoc ask has neither."""
        if app is not None:
            config = self.settings.apps.get(app)
            if config is None:
                raise NotFound(f"No app named '{app}'.", param="app")
            if top_k is not None:
                top_k = min(top_k, config.top_k)
        elif kb is not None:
            config = AppConfig(knowledge_base=kb, model=model or "local")
        else:
            raise InvalidRequest("Name an 'app' or a knowledge base ('kb').", param="kb")
        updates: dict[str, Any] = {}
        if model is not None:
            updates["model"] = model
        if top_k is not None:
            updates["top_k"] = top_k
        config = config.model_copy(update=updates)
        messages = [*(history or []), {"role": "user", "content": question}]
        ctx = self._new_context(
            config.model,
            ChatCall(messages=messages),
            endpoint="ask",
            timeout_s=self.request_timeout_s(timeout_s, config),
            stream=stream,
            tenant=tenant,
            key_id=key_id,
        )
        ctx.app, ctx.app_name, ctx.filters = config, app or f"kb:{kb}", dict(filters or {})
        _default_temperature(ctx.call, config)
        ctx.trace.attrs["app"] = ctx.app_name
        return ctx

    def _new_context(
        self,
        model: str,
        call: ChatCall,
        *,
        endpoint: str,
        timeout_s: float,
        stream: bool,
        tenant: str,
        key_id: str | None,
        include_usage: bool = False,
    ) -> RequestContext:
        trace = Trace(
            id=new_trace_id(),
            tenant=tenant,
            endpoint=endpoint,
            model=model,
            stream=stream,
            key_id=key_id,
        )
        return RequestContext(
            trace=trace,
            model=model,
            call=call,
            deadline=time.monotonic() + timeout_s,
            stream=stream,
            include_usage=include_usage,
            tenant=tenant,
        )

    async def chat(self, ctx: RequestContext) -> None:
        """Run the pipeline. Non-streamed requests are finished (traced) here; streamed ones
        are finished by :meth:`stream_chunks` once the stream ends."""
        try:
            pipeline = self._pipeline_for(ctx)
            async with asyncio.timeout(max(ctx.remaining(), 0.0)):
                await pipeline.run(ctx)
        except TimeoutError:
            err = DeadlineExceeded("the request deadline passed before an answer was ready")
            await self._failed(ctx, err)
            raise err from None
        except BaseException as exc:
            await self._failed(ctx, exc)
            raise
        if not ctx.stream:
            completion = ctx.completion
            served_fresh = ctx.cache is None or not ctx.cache.hit
            if completion is not None and served_fresh and ctx.usage.total_tokens == 0:
                # No upstream generates an answer from nothing: it left usage out of its
                # body, so the answer is billed by estimate rather than as free.
                ctx.usage = estimate_completion(ctx.call, completion.choices)
            self.finish(ctx)

    async def _failed(self, ctx: RequestContext, error: BaseException) -> None:
        self.finish(ctx, error)
        if ctx.chunks is not None:
            # A stream opened before a later stage failed still holds its deployment.
            await shielded(close_quietly(ctx.chunks))

    async def stream_chunks(self, ctx: RequestContext) -> AsyncGenerator[Chunk, None]:
        """The chunks of a started stream; records usage, cost and the trace at the end,
        whether it ends normally, on an upstream error or because the client went away."""
        assert ctx.first_chunk is not None and ctx.chunks is not None
        error: BaseException | None = None
        ctx.trace.ttft_ms = ctx.trace.elapsed_ms()
        replayed = ctx.cache is not None and ctx.cache.hit
        # A grounded answer's citations are resolved from its whole text once it is complete
        # (a replayed one brought its own).
        text: list[str] | None = [] if ctx.app is not None and not replayed else None
        extra: dict[str, Any] = {}
        recorder = StreamRecorder() if ctx.cache is not None and not replayed else None
        meter = None if replayed else StreamMeter()  # a replayed answer cost nothing
        fingerprint: str | None = None
        try:
            _absorb(ctx, ctx.first_chunk, text, extra, meter)
            if recorder is not None:
                recorder.add(ctx.first_chunk)
            fingerprint = ctx.first_chunk.system_fingerprint
            yield ctx.first_chunk
            async for chunk in ctx.chunks:
                _absorb(ctx, chunk, text, extra, meter)
                if recorder is not None:
                    recorder.add(chunk)
                fingerprint = chunk.system_fingerprint or fingerprint
                yield chunk
            if text is not None:
                resolve_citations(ctx, "".join(text), extra)
            if recorder is not None and self.cache is not None:
                await self.cache.write(ctx, recorder.choices(), fingerprint)
        except BaseException as exc:
            error = exc
            raise
        finally:
            # What needs no waiting comes first: when the client went away, every await in
            # here may be cancelled, and usage, cost and the trace must not be lost with it.
            self._finish_stream(ctx, meter, error)
            # Closing the stream frees its deployment and closes the upstream response: a
            # client that disconnects cancels the upstream request. Shielded only when the
            # stream did not run to its end (a finished one has nothing left to wait for).
            closing = close_quietly(ctx.chunks)
            await (closing if error is None else shielded(closing))

    async def end_stream(self, ctx: RequestContext) -> None:
        """End a stream however far it got; a no-op for one :meth:`stream_chunks` ended. One
        never read (its client went away before the first byte) is ended here as cancelled,
        billed for its prompt and the first chunk the upstream had sent."""
        if not ctx.finished:
            meter = None
            if ctx.first_chunk is not None and not (ctx.cache is not None and ctx.cache.hit):
                meter = StreamMeter()
                meter.add(ctx.first_chunk)
            self._finish_stream(ctx, meter, asyncio.CancelledError())
        if ctx.chunks is not None:
            await close_quietly(ctx.chunks)

    def _finish_stream(
        self, ctx: RequestContext, meter: StreamMeter | None, error: BaseException | None
    ) -> None:
        if ctx.finished:
            return
        if meter is not None and not meter.reported:
            ctx.usage = meter.estimate(ctx.call)
        self.finish(ctx, error)

    def finish(self, ctx: RequestContext, error: BaseException | None = None) -> None:
        if ctx.finished:
            return
        ctx.finished = True
        trace = ctx.trace
        trace.latency_ms = trace.elapsed_ms()
        trace.deployment = ctx.deployment
        trace.source = ctx.source if ctx.deployment else None
        trace.prompt_tokens = ctx.usage.prompt_tokens
        trace.completion_tokens = ctx.usage.completion_tokens
        if ctx.usage.estimated:
            trace.attrs["usage_estimated"] = True
        ctx.cost_usd = self.prices.cost(ctx.deployment, ctx.usage)
        trace.cost_usd = ctx.cost_usd
        if ctx.citations:
            trace.attrs["citations"] = ctx.citations
        mark_error(trace, error)
        self.metrics.observe(trace)
        self.traces.submit(trace)

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
    ) -> tuple[Trace, str, Embeddings]:
        trace = Trace(
            id=new_trace_id(), tenant=tenant, endpoint="embeddings", model=model, key_id=key_id
        )
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
            "deployments": self.resilience.snapshot(),
        }


def _absorb(
    ctx: RequestContext,
    chunk: Chunk,
    text: list[str] | None,
    extra: dict[str, Any],
    meter: StreamMeter | None,
) -> None:
    """Keep what a stream reports along the way: usage (last one wins), citations, text."""
    if meter is not None:
        meter.add(chunk)
    if chunk.usage is not None:
        ctx.usage = chunk.usage
    if chunk.extra:
        extra.update(chunk.extra)
        citations = chunk.extra.get("citations")
        if isinstance(citations, list) and ctx.app is None:
            ctx.citations = citations
    if text is not None:
        for choice in chunk.choices:
            piece = (choice.get("delta") or {}).get("content")
            if isinstance(piece, str):
                text.append(piece)


def _default_temperature(call: ChatCall, app: AppConfig) -> None:
    if "temperature" not in call.params and app.temperature is not None:
        call.params["temperature"] = app.temperature


def mark_error(trace: Trace, error: BaseException | None) -> None:
    if error is None:
        return
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        trace.status, trace.http_status = "cancelled", 499
        trace.error_type, trace.error_message = "client_disconnected", "the client went away"
    elif isinstance(error, GroundgateError):
        trace.status, trace.http_status = "error", error.status_code
        trace.error_type, trace.error_message = type(error).__name__, error.message
    else:
        trace.status, trace.http_status = "error", 500
        trace.error_type, trace.error_message = type(error).__name__, "internal error"
