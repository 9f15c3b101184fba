"""Guard passages: retrieved passages scored for indirect injection before the prompt is built;
a passage that reads like instructions to the model is fenced (marked as data) or dropped, per
``guards.passages``. The request itself is never failed for what a document says.

Each passage is embedded with the guards' embedder through the embedding cache (keyed by the
text's hash): a chunk is embedded once, then read back on every later question that finds it.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from groundgate.config_guards import PassagesGuard
from groundgate.guards.decision import GuardDecision, GuardReport
from groundgate.guards.embedder import guard_embedder
from groundgate.guards.indirect import fence, flagged
from groundgate.guards.injection import InjectionClassifier, embedding_text, shipped_classifier
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage
from groundgate.retrieval.embedding import EmbeddingService


def guard_passages_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    config = target.guards(services.settings).passages
    if config.action == "off":
        return None
    classifier = shipped_classifier()
    where = f"apps.{target.name}.guards.passages" if target.app is not None else "guards.passages"
    embedder = guard_embedder(
        services.embeddings, classifier.embedder, services.settings.cache.embedder, where
    )
    return GuardPassages(config, embedder, classifier)


class GuardPassages(Stage):
    name = "guard_passages"
    span = "guard_passages"

    def __init__(
        self, config: PassagesGuard, embedder: EmbeddingService, classifier: InjectionClassifier
    ) -> None:
        self.config = config
        self.embedder = embedder
        self.classifier = classifier
        self.threshold = config.threshold or classifier.threshold

    async def enter(self, ctx: RequestContext) -> None:
        passages = ctx.passages
        if not passages:
            return
        started = time.perf_counter()
        texts = [p.chunk.text for p in passages]
        vectors = await self.embedder.embed([embedding_text(t) for t in texts], trace=ctx.trace)
        hits = flagged(self.classifier, texts, np.asarray(vectors), self.threshold)
        elapsed = (time.perf_counter() - started) * 1000.0
        report = ctx.guards = ctx.guards or GuardReport()
        report.timed("passages", elapsed)
        if not hits:
            return
        action = self.config.action
        marked = {i for i, _ in hits}
        if action == "drop":
            ctx.passages = [p for i, p in enumerate(passages) if i not in marked]
        elif action == "fence":
            ctx.passages = [
                dataclasses.replace(p, chunk=dataclasses.replace(p.chunk, text=fence(p.chunk.text)))
                if i in marked
                else p
                for i, p in enumerate(passages)
            ]
        report.add(
            GuardDecision(
                "passages",
                action,
                max(score for _, score in hits),
                elapsed,
                {
                    "flagged": len(hits),
                    "of": len(passages),
                    "chunk_ids": [passages[i].chunk.id for i, _ in hits],
                },
            )
        )
