"""Embedding similarity with the local MiniLM embedder (the groundedness scorer's, loaded once
per process): of an answer to the acceptable answers, and of an answer to its question.

Cosines of MiniLM's unit vectors lie in [-1, 1]; unrelated English texts sit near 0, so a
negative cosine is read as 0 and scores stay in [0, 1]. Blocking CPU work: the scorers run
these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from groundgate.guards.groundedness_check import process_scorer
from groundgate.guards.grounding import SentenceEmbedder


def _embedder() -> SentenceEmbedder:
    return process_scorer().embedder


def cosines(
    text: str, others: Sequence[str], embedder: SentenceEmbedder | None = None
) -> list[float]:
    """The cosine of ``text`` with each of ``others`` (in order), each clipped to [0, 1]."""
    if not others:
        return []
    vectors = (embedder or _embedder()).embed([text, *others])
    similarity = vectors[1:] @ vectors[0]
    return [float(x) for x in np.clip(similarity, 0.0, 1.0)]


def answer_similarity(
    answer: str, expected: Sequence[str], embedder: SentenceEmbedder | None = None
) -> float:
    """The best cosine of ``answer`` with any of the ``expected`` answers (each acceptable)."""
    if not expected:
        raise ValueError("at least one expected answer is needed")
    if not answer.strip():
        return 0.0
    return max(cosines(answer, expected, embedder))


def answer_relevance(question: str, answer: str, embedder: SentenceEmbedder | None = None) -> float:
    """How much ``answer`` is about ``question``: their cosine (0.0 for an empty answer)."""
    if not answer.strip():
        return 0.0
    return cosines(question, [answer], embedder)[0]
