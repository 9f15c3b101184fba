"""The response cache as a service: ``lookup`` before an answer is generated (the pipeline's
cache stage serves a hit), ``write`` once an answer, whole or streamed, is complete.

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
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from groundgate.cache.answer import CachedAnswer
from groundgate.cache.backend import CacheBackend, CachedEntry, Vector
from groundgate.cache.keys import CacheIdentity, identify, is_sampled
from groundgate.cache.semantic import SemanticMatcher
from groundgate.config import AppConfig
from groundgate.config_cache import CachePolicy
from groundgate.errors import GroundgateError
from groundgate.observe.cost import PriceTable
from groundgate.observe.metrics import Metrics
from groundgate.observe.trace import Trace
from groundgate.providers.base import ChatCall, Usage
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.store.knowledge import KnowledgeStore

log = logging.getLogger("groundgate.cache")

_KEPT_FINISH_REASONS = frozenset({"stop", "tool_calls"})
_NEIGHBOURS = 3  # cached questions checked per semantic lookup, nearest first
T = TypeVar("T")


@dataclass(slots=True)
class CacheState:
    """What the cache knows about one request (``ctx.cache``); ``answer`` is set on a hit."""

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
    # The request's question vectors, shared with the guards (``RequestContext.vectors``): one
    # embedding per question, whichever stage needs it first.
    shared_vectors: dict[tuple[str, str], Vector] | None = None

    @property
    def hit(self) -> bool:
        return self.status in ("exact", "semantic")

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

    async def lookup(
        self,
        policy: CachePolicy | None,
        *,
        tenant: str,
        target: str,
        call: ChatCall,
        app: AppConfig | None,
        filters: dict[str, Any],
        read: bool,
        trace: Trace,
        vectors: dict[tuple[str, str], Vector] | None = None,
        variant: str | None = None,
        model: str | None = None,
    ) -> CacheState | None:
        """The request's cache state (a hit carries its answer), or None when the request is
        not cacheable. ``target`` is the app or model the client named (``model``: the model
        of the tier it was routed to, if it has tiers); ``read`` False
        (``Cache-Control: no-cache``) skips the lookup and still keys the request for the
        write."""
        if policy is None or not (policy.exact or policy.semantic):
            return None
        if is_sampled(call.params) and not policy.cache_sampled:
            return None
        started = time.perf_counter()
        app_key: dict[str, Any] | None = None
        kb_version: str | None = None
        if app is not None:
            if app.knowledge_base is None:
                return None  # an agent app: its answer comes through tools, not one corpus
            kb_version = await self.knowledge.kb_version(tenant, app.knowledge_base)
            if kb_version is None:
                return None  # no such knowledge base: retrieval will say so; nothing to key by
            app_key = app.model_dump(
                include={"knowledge_base", "model", "prompt", "top_k", "context_tokens", "filters"}
            )
            app_key["request_filters"] = filters
        identity = identify(
            tenant=tenant,
            target=target,
            messages=call.messages,
            params=call.params,
            app=app_key,
            kb_version=kb_version,
            # Vectors of different embedders must never share a semantic index.
            embedder=self.embedder.model_key if self.embedder is not None else None,
            variant=variant,
            model=model,
        )
        state = CacheState(identity, policy, shared_vectors=vectors)
        state.timings["identify"] = (time.perf_counter() - started) * 1000.0
        if not read:
            state.status = "bypass"
        else:
            try:
                await self._find(target, trace, state)
            except (GroundgateError, ValueError) as exc:  # cache or embedder: go upstream
                log.warning("cache lookup skipped: %s", exc)
                state.status = "error"
            if state.timings:
                timings = {name: round(ms, 3) for name, ms in state.timings.items()}
                trace.attrs["cache_timings_ms"] = timings
        self.metrics.cache_lookup(target, state.status)
        return state

    async def _find(self, target: str, trace: Trace, state: CacheState) -> None:
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
            self._serve(trace, state, entry, "exact", 1.0)
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
            vector = await self._embed(trace, state)
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
                self._serve(trace, state, neighbour.entry, "semantic", neighbour.similarity)
                lap("serve")
                return
            if decision.reason.startswith("guard:"):
                rule = decision.reason.removeprefix("guard: ").split(":", 1)[0]
                self.metrics.cache_guard_rejection(target, rule)
                trace.attrs.setdefault("cache_guard", []).append(decision.reason)

    @staticmethod
    async def _timed(timings: dict[str, float], name: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            timings[name] = (time.perf_counter() - started) * 1000.0

    async def _embed(self, trace: Trace, state: CacheState) -> Vector:
        assert self.embedder is not None
        return await self.embedder.embed_query(
            state.identity.normalized, trace=trace, shared=state.shared_vectors
        )

    @staticmethod
    def _serve(
        trace: Trace, state: CacheState, entry: CachedEntry, kind: str, similarity: float
    ) -> None:
        state.answer = CachedAnswer.from_bytes(entry.payload)
        state.status, state.similarity = kind, similarity
        trace.attrs["cache"] = state.summary()

    async def write(
        self,
        state: CacheState,
        choices: list[dict[str, Any]] | None,
        system_fingerprint: str | None,
        *,
        allowed: bool,
        source: str,
        degraded: bool,
        deployment: str | None,
        usage: Usage,
        citations: list[dict[str, Any]],
        abstained: bool,
        trace: Trace,
    ) -> None:
        """Keep a finished answer, if it is one worth keeping (see the module docstring):
        ``allowed`` is False under ``Cache-Control: no-store``; ``degraded``: the answer lost
        the documents it should have used."""
        if state.hit or not allowed or not choices:
            return
        if source not in ("rag", "model") or degraded:
            return
        if any(c.get("finish_reason") not in _KEPT_FINISH_REASONS for c in choices):
            return
        identity, policy = state.identity, state.policy
        answer = CachedAnswer(
            choices=choices,
            deployment=deployment,
            trace_id=trace.id,
            created=int(time.time()),
            cost_usd=self.prices.cost(deployment, usage),
            usage=usage.as_dict(),
            citations=citations,
            abstained=abstained,
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
                vector = await self._embed(trace, state)
            entry = CachedEntry(identity.key, identity.question, answer.to_bytes(), vector)
            await self.backend.put(identity.scope, entry, policy.ttl_s)
        except (GroundgateError, ValueError) as exc:
            log.warning("answer not cached: %s", exc)
            return
        trace.attrs["cache"] = {"status": state.status, "stored": True}
