"""Prompt assembly for grounded answers: numbered sources within a context token budget."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from groundgate.prompts.format import PromptVersion
from groundgate.retrieval.chunking import estimate_tokens
from groundgate.store.knowledge import StoredChunk


@dataclass(slots=True)
class NumberedSource:
    n: int
    chunk: StoredChunk


def build_context(
    template: PromptVersion,
    chunks: Sequence[StoredChunk],
    budget_tokens: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> tuple[str, list[NumberedSource]]:
    """The system message and the sources it numbers. Sources are taken best first until the
    budget is spent; one that does not fit is skipped (a smaller later one may still fit)."""
    used = count_tokens(template.instructions)
    blocks: list[str] = []
    sources: list[NumberedSource] = []
    for chunk in chunks:
        n = len(sources) + 1
        block = template.source_format.format(
            n=n,
            title=chunk.title or chunk.source or chunk.doc_id,
            headings=" > ".join(chunk.heading_path),
            text=chunk.text,
        )
        cost = count_tokens(block)
        if used + cost > budget_tokens:
            continue
        used += cost
        blocks.append(block)
        sources.append(NumberedSource(n, chunk))
    if not sources:
        return template.instructions + "\n\nSources: (none found)", []
    return template.instructions + "\n\nSources:\n\n" + "\n\n".join(blocks), sources


_MARKER = re.compile(r"\[(\d{1,3})\]")


def cited_numbers(answer: str) -> list[int]:
    """The distinct [n] markers of an answer, in order of first appearance."""
    return list(dict.fromkeys(int(m) for m in _MARKER.findall(answer)))


def citation(source: NumberedSource, snippet: str | None = None) -> dict[str, Any]:
    chunk = source.chunk
    return {
        "index": source.n,
        "document_id": chunk.doc_id,
        "chunk_id": chunk.id,
        "source": chunk.source,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "snippet": snippet if snippet is not None else _excerpt(chunk.text),
    }


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
