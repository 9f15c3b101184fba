"""Guard in: the client's messages checked before anything else sees them (the cache, retrieval,
the provider, the trace): secrets and PII first (redacted in place, so what follows only ever
sees placeholders), then size and language, then the question's embedding for the injection
classifier and the topics, then tool results for indirect injection.

Each guard acts per its config (``config_guards.py``): a ``block`` raises :class:`GuardBlocked`
before anything is sent upstream; ``review`` leaves a decision the review stage acts on. With
reversible PII redaction, this stage's transform (the outermost one) puts the originals back
into the answer, streamed or whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from groundgate.config_guards import GuardsConfig
from groundgate.errors import GroundgateError, GuardBlocked
from groundgate.guards import language
from groundgate.guards.decision import GuardDecision, GuardReport
from groundgate.guards.detect import find_sensitive
from groundgate.guards.embedder import guard_embedder
from groundgate.guards.indirect import DROPPED, fence, flagged
from groundgate.guards.injection import InjectionClassifier, embedding_text, shipped_classifier
from groundgate.guards.messages import last_user_text, text_slots
from groundgate.guards.pii import find_pii
from groundgate.guards.redaction import Redactor
from groundgate.guards.restore import StreamRestorer
from groundgate.guards.secrets import SECRET, find_secrets
from groundgate.guards.spans import Span
from groundgate.guards.topics import TopicMatcher
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage
from groundgate.providers.base import Chunk
from groundgate.retrieval.embedding import EmbeddingService

_BLOCKED = {
    "secrets": "The request contains a secret (an API key, token, private key or password).",
    "pii": "The request contains personal data this app does not accept.",
    "injection": "The request reads like a prompt injection or jailbreak attempt.",
    "topics": "The request is about a topic this app does not handle.",
    "limits": "The request is outside this app's size or language limits.",
}
_TOOL_ROLES = ("tool", "function")


def guard_in_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    config = target.guards(services.settings)
    checks_tools = config.passages.action != "off"
    if not (config.input_on or checks_tools):
        return None
    embeds = config.injection.action != "off" or config.topics.action != "off" or checks_tools
    classifier = shipped_classifier() if config.injection.action != "off" or checks_tools else None
    embedder = None
    if embeds:
        model = classifier.embedder if classifier is not None else "all-MiniLM-L6-v2-int8"
        where = f"apps.{target.name}.guards" if target.app is not None else "guards"
        embedder = guard_embedder(
            services.embeddings, model, services.settings.cache.embedder, where
        )
    return GuardIn(config, embedder, classifier)


class GuardIn(Stage):
    name = "guard_in"
    span = "guard_in"

    def __init__(
        self,
        config: GuardsConfig,
        embedder: EmbeddingService | None,
        classifier: InjectionClassifier | None,
    ) -> None:
        self.config = config
        self.embedder = embedder
        self.classifier = classifier
        self._topics: TopicMatcher | None = None

    async def enter(self, ctx: RequestContext) -> None:
        report = ctx.guards = ctx.guards or GuardReport()
        config = self.config
        self._sensitive(ctx, report)
        question = last_user_text(ctx.call.messages)
        if config.limits.action != "off":
            await self._limits(ctx, report, question)
        if question and (config.injection.action != "off" or config.topics.action != "off"):
            await self._question(ctx, report, question)
        if config.passages.action != "off":
            await self._tool_results(ctx, report)

    # -- secrets and PII -----------------------------------------------------------------

    def _sensitive(self, ctx: RequestContext, report: GuardReport) -> None:
        config = self.config
        secrets_on = config.secrets.action != "off"
        pii_on = config.pii.action != "off"
        if not (secrets_on or pii_on):
            return
        started = time.perf_counter()
        pii_types = set(config.pii.types) if pii_on else set()
        redacting = {g for g in ("secrets", "pii") if _action(config, g) == "redact"}
        found: dict[str, dict[str, int]] = {"secrets": {}, "pii": {}}
        redactor = Redactor()  # one for the whole conversation: a value, one placeholder
        for slot in text_slots(ctx.call.messages):
            text = slot.text
            if not text:
                continue
            to_redact = []
            for span in _detect(text, secrets_on, pii_on):
                guard = "secrets" if span.type == SECRET else "pii"
                if guard == "pii" and span.type not in pii_types:
                    continue
                counts = found[guard]
                counts[span.type] = counts.get(span.type, 0) + 1
                if guard in redacting:
                    to_redact.append(span)
            if to_redact:
                slot.replace(redactor.redact(text, to_redact))
        elapsed = (time.perf_counter() - started) * 1000.0
        report.timed("sensitive", elapsed)
        if config.pii.restore and "pii" in redacting:
            # Secrets never come back; personal data does, in this client's answer only.
            restorable = {
                p: o for p, o in redactor.mapping.items() if not p.startswith(f"[{SECRET}_")
            }
            if restorable:
                ctx.restore.update(restorable)
                # The answer carries this client's values once restored: not for others.
                ctx.cache_write = False
        for guard in ("secrets", "pii"):
            if found[guard]:
                self._decide(report, guard, None, elapsed, {"types": found[guard]})

    # -- size and language ---------------------------------------------------------------

    async def _limits(self, ctx: RequestContext, report: GuardReport, question: str) -> None:
        limits = self.config.limits
        if limits.max_chars is not None:
            longest = max(
                (len(s.text) for s in text_slots(ctx.call.messages) if s.role == "user"),
                default=0,
            )
            if longest > limits.max_chars:
                detail = {"max_chars": limits.max_chars, "chars": longest}
                self._decide(report, "limits", None, 0.0, detail)
        if limits.languages and question:
            if not language.is_loaded():
                # Loaded once per process (~0.5 s): not on the event loop.
                await asyncio.to_thread(language.warm)
            started = time.perf_counter()
            verdict = language.check_language(
                question, limits.languages, limits.language_confidence
            )
            elapsed = (time.perf_counter() - started) * 1000.0
            report.timed("language", elapsed)
            if verdict.refused:
                detail_l = {"language": verdict.language, "allowed": limits.languages}
                self._decide(report, "limits", verdict.confidence, elapsed, detail_l)

    # -- the question: injection and topics ----------------------------------------------

    async def _question(self, ctx: RequestContext, report: GuardReport, question: str) -> None:
        assert self.embedder is not None
        config = self.config
        started = time.perf_counter()
        try:
            vector = await self.embedder.embed_query(
                embedding_text(question), trace=ctx.trace, shared=ctx.vectors
            )
        except GroundgateError as exc:
            self._unchecked(report, exc)
            return
        report.timed("embedding", (time.perf_counter() - started) * 1000.0)
        if config.injection.action != "off" and self.classifier is not None:
            started = time.perf_counter()
            verdict = self.classifier.score(question, vector)
            threshold = config.injection.threshold or self.classifier.threshold
            elapsed = (time.perf_counter() - started) * 1000.0
            report.timed("injection", elapsed)
            if verdict.score >= threshold:
                rules = {"rules": list(verdict.rules)} if verdict.rules else {}
                self._decide(report, "injection", verdict.score, elapsed, rules)
        if config.topics.action != "off":
            started = time.perf_counter()
            matcher = self._topics or await self._topic_matcher(ctx)
            verdict_t = matcher.judge(vector)
            elapsed = (time.perf_counter() - started) * 1000.0
            report.timed("topics", elapsed)
            if verdict_t.refused:
                topic = {"reason": verdict_t.reason, "topic": verdict_t.topic}
                self._decide(report, "topics", verdict_t.score, elapsed, topic)

    def _unchecked(self, report: GuardReport, exc: GroundgateError) -> None:
        """The question could not be embedded (the embedder is down or cannot load). A guard
        that would block fails closed: the request is refused with the embedder's error rather
        than let through unchecked. One that only flags or reviews lets the request through
        and says it did not check."""
        guards = [g for g in ("injection", "topics") if _action(self.config, g) != "off"]
        if any(_action(self.config, g) == "block" for g in guards):
            raise exc
        for guard in guards:
            detail = {"reason": f"embedding failed: {type(exc).__name__}"}
            report.add(GuardDecision(guard, "unchecked", None, 0.0, detail))

    async def _topic_matcher(self, ctx: RequestContext) -> TopicMatcher:
        assert self.embedder is not None
        topics = self.config.topics
        texts = [embedding_text(t) for t in (*topics.deny, *topics.allow)]
        vectors = await self.embedder.embed(texts, trace=ctx.trace)
        matcher = TopicMatcher(
            topics.deny,
            topics.allow,
            topics.threshold,
            vectors[: len(topics.deny)],
            vectors[len(topics.deny) :],
        )
        self._topics = matcher
        return matcher

    # -- tool results: indirect injection ------------------------------------------------

    async def _tool_results(self, ctx: RequestContext, report: GuardReport) -> None:
        slots = [s for s in text_slots(ctx.call.messages) if s.role in _TOOL_ROLES and s.text]
        if not slots or self.classifier is None or self.embedder is None:
            return
        started = time.perf_counter()
        texts = [s.text for s in slots]
        vectors = await self.embedder.embed([embedding_text(t) for t in texts], trace=ctx.trace)
        passages = self.config.passages
        threshold = passages.threshold or self.classifier.threshold
        hits = flagged(self.classifier, texts, np.asarray(vectors), threshold)
        elapsed = (time.perf_counter() - started) * 1000.0
        report.timed("tool_results", elapsed)
        if not hits:
            return
        for i, _ in hits:
            if passages.action == "fence":
                slots[i].replace(fence(texts[i]))
            elif passages.action == "drop":
                slots[i].replace(DROPPED)
        report.add(
            GuardDecision(
                "tool_results",
                passages.action,
                max(score for _, score in hits),
                elapsed,
                {"flagged": len(hits), "of": len(slots)},
            )
        )

    # -- acting ---------------------------------------------------------------------------

    def _decide(
        self,
        report: GuardReport,
        guard: str,
        score: float | None,
        latency_ms: float,
        detail: dict[str, Any],
    ) -> None:
        action = _action(self.config, guard)
        report.add(GuardDecision(guard, action, score, latency_ms, detail))
        if action == "block":
            raise GuardBlocked(guard, _BLOCKED[guard])

    # -- the answer: reversible redaction's way back --------------------------------------

    def sees_answer(self, ctx: RequestContext) -> bool:
        return bool(ctx.restore)

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        restorers: dict[int, StreamRestorer] = {}
        last: Chunk | None = None
        async for chunk in chunks:
            for choice in chunk.choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if not isinstance(content, str):
                    continue
                index = int(choice.get("index", 0))
                restorer = restorers.get(index)
                if restorer is None:
                    restorer = restorers[index] = StreamRestorer(ctx.restore)
                delta["content"] = restorer.feed(content)
                if choice.get("finish_reason") is not None:
                    delta["content"] += restorer.flush()
            last = chunk
            yield chunk
        # A stream whose last piece came without a finish: what is still pending goes out.
        tails = {i: r.flush() for i, r in restorers.items()}
        tails = {i: t for i, t in tails.items() if t}
        if tails and last is not None:
            yield Chunk(
                [{"index": i, "delta": {"content": t}} for i, t in sorted(tails.items())],
                None,
                last.id,
                last.system_fingerprint,
                {},
            )


def _action(config: GuardsConfig, guard: str) -> str:
    action: str = getattr(config, guard).action
    return action


def _detect(text: str, secrets: bool, pii: bool) -> list[Span]:
    if secrets and pii:
        return find_sensitive(text)
    return find_secrets(text) if secrets else find_pii(text)
