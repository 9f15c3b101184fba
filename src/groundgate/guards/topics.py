"""Unsupported requests by topic: the question's embedding against an app's deny and allow
topics (short descriptions, embedded once with the same model as the question).

A question is out of bounds when it is at least ``threshold``-similar (cosine) to a deny topic,
or, when allow topics are set, less than ``threshold``-similar to every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TopicVerdict:
    refused: bool
    score: float  # the deciding similarity: the best deny match, else the best allow match
    reason: str  # "deny" (matched a deny topic), "allow" (matched no allow topic), ""
    topic: str | None  # the deny topic matched, or the nearest allow topic


class TopicMatcher:
    def __init__(
        self,
        deny: list[str],
        allow: list[str],
        threshold: float,
        deny_vectors: Vectors,
        allow_vectors: Vectors,
    ) -> None:
        self.deny, self.allow, self.threshold = deny, allow, threshold
        self._deny = deny_vectors
        self._allow = allow_vectors

    def judge(self, question: npt.ArrayLike) -> TopicVerdict:
        vector = np.asarray(question, dtype=np.float32).reshape(-1)
        if self.deny:
            similarities = self._deny @ vector
            best = int(np.argmax(similarities))
            score = float(similarities[best])
            if score >= self.threshold:
                return TopicVerdict(True, score, "deny", self.deny[best])
        if self.allow:
            similarities = self._allow @ vector
            best = int(np.argmax(similarities))
            score = float(similarities[best])
            return TopicVerdict(score < self.threshold, score, "allow", self.allow[best])
        return TopicVerdict(False, score if self.deny else 0.0, "", None)
