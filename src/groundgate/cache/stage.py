"""The cache on the request path: ``CacheLookup`` first (an answer found ends the pipeline),
``CacheWrite`` last (non-streamed answers; streamed ones are written by the runtime when the
stream has finished).

A lookup is exact first (one backend read), then semantic for single-turn questions: the
normalised question is embedded (through the embedding cache) and the nearest cached questions
of the same partition are checked, best first, against the app's threshold and the false-hit
guard. A cache that cannot be reached is skipped (the request goes upstream), never fatal.

What is written: answers that finished (``stop`` or ``tool_calls``), came from the intended
source (not a fallback, not an answer that lost its documents) and were not served from the
cache themselves. ``Cache-Control: no-cache`` skips reads but still writes; ``no-store`` skips
both.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from groundgate.cache.answer import CachedAnswer, replay_chunks, replay_stream
from groundgate.cache.backend import CacheBackend, CachedEntry, Vector
from groundgate.cache.keys import CacheIdentity, identify, is_sampled
from groundgate.cache.semantic import SemanticMatcher
from groundgate.config_cache import CachePolicy
from groundgate.errors import GroundgateError
from groundgate.observe.cost import PriceTable
from groundgate.observe.metrics import Metrics
from groundgate.pipeline.context import RequestContext
from groundgate.providers.base import Completion, Usage
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.store.knowledge import KnowledgeStore

log = logging.getLogger("groundgate.cache")

_KEPT_FINISH_REASONS = frozenset({"stop", "tool_calls"})
_NEIGHBOURS = 3  # cached questions checked per semantic lookup, nearest first
T = TypeVar("T")


@dataclass(slots=True)
class CacheState:
    """What the cache knows about one request (``ctx.cache``)."""

    identity: CacheIdentity
    policy: CachePolicy
    status: str = "miss"  # miss | exact | semantic | bypass | error
    similarity: float | None = None
    vector: Vector | None = None
    answer: CachedAnswer | None = None
    # Where the lookup's time went, in ms: identify (key and partition), exact read, question
    # embedding and index refresh (these two overlap), index search, decide (threshold and
    # guard), serve.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        return self.status in ("exact", "semantic")

    def header_values(self) -> dict[str, str]:
        headers = {"x-groundgate-cache": self.status}
        if self.similarity is not None:
            headers["x-groundgate-cache-similarity"] = f"{self.similarity:.4f}"
        return headers

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.answer is not None:
            out.update(
                similarity=round(self.similarity or 0.0, 6),
                cached_trace_id=self.answer.trace_id,
                saved_usd=round(self.answer.cost_usd, 10),
            )
        return out


class ResponseCache:
    def __init__(
        self,
        backend: CacheBackend,
        knowledge: KnowledgeStore,
        embedder: EmbeddingService | None,
        prices: PriceTable,
        metrics: Metrics,
    ) -> None:
        self.backend = backend
        self.knowledge = knowledge
        self.embedder = embedder
        self.prices = prices
        self.metrics = metrics

    async def forget(self, tenant: str, targets: list[str]) -> None:
        """Drop every cached answer of these targets (best effort: a cache that cannot be
        reached is logged, and its stale answers cannot match a newer version anyway)."""
        for target in targets:
            try:
                await self.backend.clear(tenant, target)
            except GroundgateError as exc:
                log.warning("cached answers of %s not cleared: %s", target, exc)

    async def lookup(self, ctx: RequestContext, policy: CachePolicy | None) -> None:
        if policy is None or not (policy.exact or policy.semantic):
            return
        if is_sampled(ctx.call.params) and not policy.cache_sampled:
            return
        started = time.perf_counter()
        target = ctx.app_name or ctx.model
        app: dict[str, Any] | None = None
        kb_version: str | None = None
        if ctx.app is not None:
            kb_version = await self.knowledge.kb_version(ctx.tenant, ctx.app.knowledge_base)
            if kb_version is None:
                return  # no such knowledge base: retrieval will say so; nothing to key by
            app = ctx.app.model_dump(
                include={"knowledge_base", "model", "prompt", "top_k", "context_tokens", "filters"}
            )
            app["request_filters"] = ctx.filters
        identity = identify(
            tenant=ctx.tenant,
            target=target,
            messages=ctx.call.messages,
            params=ctx.call.params,
            app=app,
            kb_version=kb_version,
            # Vectors of different embedders must never share a semantic index.
            embedder=self.embedder.model_key if self.embedder is not None else None,
        )
        state = ctx.cache = CacheState(identity, policy)
        state.timings["identify"] = (time.perf_counter() - started) * 1000.0
        if not ctx.cache_read:
            state.status = "bypass"
        else:
            try:
                await self._find(ctx, state)
            except (GroundgateError, ValueError) as exc:  # cache or embedder: go upstream
                log.warning("cache lookup skipped: %s", exc)
                state.status = "error"
            if state.timings:
                timings = {name: round(ms, 3) for name, ms in state.timings.items()}
                ctx.trace.attrs["cache_timings_ms"] = timings
        self.metrics.cache_lookup(target, state.status)

    async def _find(self, ctx: RequestContext, state: CacheState) -> None:
        identity, policy = state.identity, state.policy
        timings, started = state.timings, time.perf_counter()

        def lap(name: str) -> None:
            nonlocal started
            now = time.perf_counter()
            timings[name] = (now - started) * 1000.0
            started = now

        entry = await self.backend.get(identity.scope, identity.key)
        lap("exact")
        if entry is not None:
            self._serve(ctx, state, entry, "exact", 1.0)
            return
        if not (policy.semantic and identity.single_turn and self.embedder is not None):
            return
        # The index refresh (Redis: a stream read) runs while the question is embedded, so
        # the search after it needs no round trip of its own besides fetching candidates.
        # (Alongside the exact read instead, every exact hit would pay for it.)
        refreshing = asyncio.create_task(
            self._timed(timings, "refresh", self.backend.refresh(identity.scope))
        )
        try:
            vector = await self._embed(ctx, identity)
        except BaseException:
            await asyncio.wait({refreshing})  # nothing left running behind the lookup
            if not refreshing.cancelled():
                refreshing.exception()  # retrieved: the embedding's error is the one raised
            raise
        await refreshing
        lap("embed")
        state.vector = vector
        neighbours = await self.backend.nearest(
            identity.scope,
            vector,
            _NEIGHBOURS,
            min_similarity=policy.threshold,
            refresh=False,
        )
        lap("nearest")
        matcher = SemanticMatcher(policy.threshold)
        for neighbour in neighbours:
            decision = matcher.decide(
                neighbour.similarity, identity.question, neighbour.entry.question
            )
            if decision.hit:
                lap("decide")
                self._serve(ctx, state, neighbour.entry, "semantic", neighbour.similarity)
                lap("serve")
                return
            if decision.reason.startswith("guard:"):
                rule = decision.reason.removeprefix("guard: ").split(":", 1)[0]
                self.metrics.cache_guard_rejection(ctx.app_name or ctx.model, rule)
                ctx.trace.attrs.setdefault("cache_guard", []).append(decision.reason)

    @staticmethod
    async def _timed(timings: dict[str, float], name: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            timings[name] = (time.perf_counter() - started) * 1000.0

    async def _embed(self, ctx: RequestContext, identity: CacheIdentity) -> Vector:
        assert self.embedder is not None
        return await self.embedder.embed_one(identity.normalized, trace=ctx.trace)

    def _serve(
        self,
        ctx: RequestContext,
        state: CacheState,
        entry: CachedEntry,
        kind: str,
        similarity: float,
    ) -> None:
        answer = CachedAnswer.from_bytes(entry.payload)
        state.status, state.similarity, state.answer = kind, similarity, answer
        ctx.done = True
        ctx.source = "cache"
        ctx.deployment = answer.deployment
        ctx.citations = copy.deepcopy(answer.citations)
        ctx.abstained = answer.abstained
        ctx.usage = Usage()  # nothing was sent upstream: no tokens, no cost
        if ctx.stream:
            chunks = replay_chunks(answer)
            ctx.first_chunk, ctx.chunks = chunks[0], replay_stream(chunks[1:])
        else:
            ctx.completion = Completion(
                choices=copy.deepcopy(answer.choices),
                usage=Usage(),
                created=answer.created,
                system_fingerprint=answer.system_fingerprint,
            )
        ctx.trace.attrs["cache"] = state.summary()

    async def write(
        self,
        ctx: RequestContext,
        choices: list[dict[str, Any]] | None,
        system_fingerprint: str | None = None,
    ) -> None:
        """Keep a finished answer, if it is one worth keeping (see the module docstring)."""
        state = ctx.cache
        if state is None or state.hit or not ctx.cache_write or not choices:
            return
        if ctx.source not in ("rag", "model") or ctx.retrieval_error is not None:
            return
        if any(c.get("finish_reason") not in _KEPT_FINISH_REASONS for c in choices):
            return
        identity, policy = state.identity, state.policy
        answer = CachedAnswer(
            choices=choices,
            deployment=ctx.deployment,
            trace_id=ctx.trace_id,
            created=int(time.time()),
            cost_usd=self.prices.cost(ctx.deployment, ctx.usage),
            usage=ctx.usage.as_dict(),
            citations=ctx.citations,
            abstained=ctx.abstained,
            system_fingerprint=system_fingerprint,
        )
        try:
            vector = state.vector
            if (
                vector is None
                and policy.semantic
                and identity.single_turn
                and self.embedder is not None
            ):
                vector = await self._embed(ctx, identity)
            entry = CachedEntry(identity.key, identity.question, answer.to_bytes(), vector)
            await self.backend.put(identity.scope, entry, policy.ttl_s)
        except (GroundgateError, ValueError) as exc:
            log.warning("answer not cached: %s", exc)
            return
        ctx.trace.attrs["cache"] = {"status": state.status, "stored": True}


class CacheLookup:
    name = "cache_lookup"

    def __init__(
        self, cache: ResponseCache, policy_of: Callable[[RequestContext], CachePolicy | None]
    ) -> None:
        self.cache = cache
        self.policy_of = policy_of

    async def run(self, ctx: RequestContext) -> None:
        await self.cache.lookup(ctx, self.policy_of(ctx))


class CacheWrite:
    name = "cache_write"

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    async def run(self, ctx: RequestContext) -> None:
        completion = ctx.completion
        if completion is not None:
            await self.cache.write(ctx, completion.choices, completion.system_fingerprint)
