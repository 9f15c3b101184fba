"""Fusing ranked lists from several retrievers into one.

Reciprocal rank fusion (RRF) uses ranks only, so it needs no score calibration; weighted
fusion min-max normalises each list's scores and mixes them, which keeps how much better the
top hit is than the rest. Which one wins is measured in bench/retrieval.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from groundgate.store.knowledge import Hit


def rrf(lists: Mapping[str, list[Hit]], k: int = 60) -> list[Hit]:
    scores: dict[str, float] = {}
    for hits in lists.values():
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
    return _ranked(scores)


def weighted(lists: Mapping[str, list[Hit]], weights: Mapping[str, float]) -> list[Hit]:
    scores: dict[str, float] = {}
    for name, hits in lists.items():
        if not hits:
            continue
        values = [h.score for h in hits]
        low, high = min(values), max(values)
        span = high - low
        weight = weights.get(name, 0.0)
        for hit in hits:
            # A lone hit, or a list of ties, counts as fully relevant within its list.
            norm = (hit.score - low) / span if span > 0 else 1.0
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight * norm
    return _ranked(scores)


def _ranked(scores: dict[str, float]) -> list[Hit]:
    return [
        Hit(chunk_id, score)
        for chunk_id, score in sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    ]
