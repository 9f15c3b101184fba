"""Vectorless retrieval's router: match the query against the document outline (title and
heading path) and let chunks under matching sections rise.

Structured documents (manuals, policies, API references) announce their topics in headings.
Each heading level above a chunk that contains query terms adds to the chunk's section score,
deeper levels a little more (a match on "Install > From source" is more specific than one on
"Install"); the section ranking is then fused with the keyword ranking.
"""

from __future__ import annotations

import re

from groundgate.store.knowledge import StoredChunk, keyword_terms

_WORD = re.compile(r"\w+", re.UNICODE)


def _stem(word: str) -> str:
    # Enough to match "installing"/"install", "errors"/"error" in headings.
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def section_score(query_terms: set[str], chunk: StoredChunk) -> float:
    if not query_terms:
        return 0.0
    # The title is already a keyword-indexed field; the outline adds only the headings.
    levels = chunk.heading_path
    score = 0.0
    for depth, heading in enumerate(levels, start=1):
        words = {_stem(w) for w in _WORD.findall(heading.lower())}
        matched = len(query_terms & words)
        if matched:
            score += (matched / len(query_terms)) * (1.0 + 0.25 * depth)
    return score


def route(query: str, chunks: list[StoredChunk]) -> list[tuple[StoredChunk, float]]:
    """Chunks ordered by how well their outline matches the query (best first, stable)."""
    terms = {_stem(t) for t in keyword_terms(query)}
    scored = [(chunk, section_score(terms, chunk)) for chunk in chunks]
    return sorted(scored, key=lambda item: -item[1])
