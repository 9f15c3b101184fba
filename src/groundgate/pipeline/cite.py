"""Citations: the answer's [n] markers resolved to the documents and chunks behind them."""

from __future__ import annotations

import re
from typing import Any

from groundgate.pipeline.context import RequestContext
from groundgate.prompts.assemble import citation, cited_numbers

# How models say "not in the documents" when they follow the grounded prompt.
_ABSTAIN = re.compile(
    r"could not find|couldn't find|cannot find|can't find|not (?:contained|mentioned|found) in"
    r"|no information|do(?:es)? not (?:contain|provide|mention)|unable to (?:find|answer)",
    re.IGNORECASE,
)


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
        else (not ctx.citations and bool(_ABSTAIN.search(answer)))
    )


class Cite:
    name = "cite"

    async def run(self, ctx: RequestContext) -> None:
        if ctx.app is None or ctx.completion is None:
            return
        message = (ctx.completion.choices[0].get("message") or {}) if ctx.completion.choices else {}
        content = message.get("content")
        resolve_citations(ctx, content if isinstance(content, str) else "", ctx.completion.extra)
