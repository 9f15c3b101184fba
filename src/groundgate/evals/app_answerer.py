"""The thing ``groundgate eval --app NAME`` evaluates: an app of a running Container."""

from __future__ import annotations

import time
from typing import Any

from groundgate.container import Container
from groundgate.evals.dataset import EvalCase
from groundgate.evals.runner import AnswerResult


class AppAnswerer:
    """Answers a case through the app's full grounded pipeline, in-process."""

    def __init__(self, runtime: Container, app: str, *, top_k: int | None = None) -> None:
        self.runtime = runtime
        self.app = app
        self.top_k = top_k

    async def __call__(self, case: EvalCase, /) -> AnswerResult:
        history: list[dict[str, Any]] = [t.model_dump() for t in case.history]
        ctx = self.runtime.new_ask(
            case.question,
            app=self.app,
            top_k=self.top_k,
            filters=case.filters or None,
            history=history,
        )
        started = time.perf_counter()
        await self.runtime.complete(ctx)
        latency = (time.perf_counter() - started) * 1000
        completion = ctx.completion
        message = (completion.choices[0].get("message") or {}) if completion else {}
        retrieved = list(dict.fromkeys(p.chunk.doc_id for p in ctx.passages))
        cited = list(dict.fromkeys(c["document_id"] for c in ctx.citations))
        return AnswerResult(
            answer=str(message.get("content") or ""),
            abstained=ctx.abstained,
            retrieved_ids=retrieved,
            contexts=[s.chunk.text for s in ctx.sources],
            cited_ids=cited,
            latency_ms=latency,
            cost_usd=ctx.cost_usd,
            trace_id=ctx.trace_id,
        )
