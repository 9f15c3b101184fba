"""Tool results scored for indirect injection before the model reads them: a result that reads
like instructions to the model is flagged, fenced (marked as data) or dropped, per the app's
``guards.passages`` (the setting that guards retrieved passages: both are text from outside
that the model reads as context). The run itself is never failed for what a tool returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from groundgate.guards.indirect import DROPPED, fence, flagged
from groundgate.guards.injection import InjectionClassifier, embedding_text
from groundgate.observe.trace import Trace
from groundgate.retrieval.embedding import EmbeddingService


@dataclass(frozen=True, slots=True)
class Screened:
    texts: list[str]  # the results as the model will read them
    flagged: list[tuple[int, float]]  # (index, score) of each one fenced or dropped
    elapsed_ms: float


class ResultGuard:
    def __init__(
        self,
        action: Literal["flag", "fence", "drop"],
        embedder: EmbeddingService,
        classifier: InjectionClassifier,
        threshold: float | None,
    ) -> None:
        self.action = action
        self.embedder = embedder
        self.classifier = classifier
        self.threshold = threshold or classifier.threshold

    async def screen(self, texts: list[str], trace: Trace) -> Screened:
        started = time.perf_counter()
        vectors = await self.embedder.embed([embedding_text(t) for t in texts], trace=trace)
        hits = flagged(self.classifier, texts, np.asarray(vectors), self.threshold)
        out = list(texts)
        for i, _ in hits:
            if self.action == "fence":
                out[i] = fence(texts[i])
            elif self.action == "drop":
                out[i] = DROPPED
            # "flag": recorded (the trace says so), the text goes on as it was
        return Screened(out, hits, (time.perf_counter() - started) * 1000.0)
