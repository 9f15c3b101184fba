"""Cite: a grounded answer's [n] markers resolved to the documents and chunks behind them,
from the complete answer as the client got it, whole or streamed alike."""

from __future__ import annotations

from typing import Any

from groundgate.guards.output import ABSTAINS
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Outcome, Stage, span
from groundgate.prompts.assemble import citation, cited_numbers


class Cite(Stage):
    name = "cite"

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        delivered = ctx.delivered
        if not outcome.ok or ctx.app is None or delivered is None or not delivered.complete:
            return
        with span(ctx.trace, "cite"):
            resolve_citations(ctx, delivered.text, delivered.extra)


def resolve_citations(
    ctx: RequestContext, answer: str, extra: dict[str, Any] | None = None
) -> None:
    """Fill ctx.citations and ctx.abstained for a grounded answer."""
    by_number = {s.n: s for s in ctx.sources}
    snippets: dict[int, str] = {}
    provided = (extra or {}).get("citations")
    if isinstance(provided, list):
        # The local answerer reports the sentence it quoted from each source.
        for item in provided:
            if isinstance(item, dict) and isinstance(item.get("index"), int):
                snippets.setdefault(item["index"], str(item.get("snippet", "")))
    numbers = cited_numbers(answer) or list(snippets)
    ctx.citations = [citation(by_number[n], snippets.get(n)) for n in numbers if n in by_number]
    flagged = (extra or {}).get("abstained")
    ctx.abstained = (
        bool(flagged)
        if isinstance(flagged, bool)
        else (not ctx.citations and bool(ABSTAINS.search(answer)))
    )
