"""Prompt assembly and citation resolution."""

from __future__ import annotations

import time

from groundgate.config import AppConfig
from groundgate.observe.trace import Trace
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stages.cite import resolve_citations
from groundgate.prompts.assemble import build_context, cited_numbers
from groundgate.prompts.files import load_prompt_files
from groundgate.providers.base import ChatCall
from groundgate.providers.local.sentences import split_sources
from groundgate.store.knowledge import StoredChunk


def chunk(i: int, words: int = 20) -> StoredChunk:
    return StoredChunk(
        f"d{i}#0", f"d{i}", 0, " ".join(["word"] * words), f"Doc {i}", f"doc{i}.md", ["H"], {}
    )


GROUNDED = load_prompt_files([])["grounded-answer"][1]


def test_sources_are_numbered_in_order_and_parse_back() -> None:
    template = GROUNDED
    system, sources = build_context(template, [chunk(1), chunk(2)], budget_tokens=2000)
    assert [s.n for s in sources] == [1, 2]
    assert system.startswith(template.instructions)
    # The local answerer reads the same numbering back.
    parsed = split_sources(system)
    assert [n for n, _ in parsed] == [1, 2]
    assert "Doc 1" in parsed[0][1]


def test_budget_skips_what_does_not_fit() -> None:
    template = GROUNDED
    system, sources = build_context(
        template, [chunk(1, 10), chunk(2, 2000), chunk(3, 10)], budget_tokens=300
    )
    assert [s.chunk.doc_id for s in sources] == ["d1", "d3"]
    assert [s.n for s in sources] == [1, 2]  # numbering has no gaps
    assert "Doc 2" not in system


def test_no_sources_says_so() -> None:
    system, sources = build_context(GROUNDED, [], 500)
    assert sources == [] and "(none found)" in system


def test_cited_numbers() -> None:
    assert cited_numbers("A [2]. B [1][2]. C [10].") == [2, 1, 10]
    assert cited_numbers("no citations") == []


def test_citations_resolve_to_documents() -> None:
    _, sources = build_context(GROUNDED, [chunk(1), chunk(2)], 2000)
    ctx = RequestContext(
        trace=Trace(id="t", tenant="default", endpoint="ask", model="m"),
        model="m",
        call=ChatCall(messages=[]),
        deadline=time.monotonic() + 5,
        app=AppConfig(knowledge_base="kb"),
    )
    ctx.sources = sources
    resolve_citations(ctx, "It is so [2]. Also [7].")
    assert [c["document_id"] for c in ctx.citations] == ["d2"]
    first = ctx.citations[0]
    assert set(first) >= {"document_id", "chunk_id", "source", "title", "snippet"}
    assert first["chunk_id"] == "d2#0" and first["source"] == "doc2.md"
    assert not ctx.abstained
    resolve_citations(ctx, "I could not find that in the provided documents.")
    assert ctx.citations == [] and ctx.abstained
    resolve_citations(ctx, "x", {"abstained": True, "citations": []})
    assert ctx.abstained
