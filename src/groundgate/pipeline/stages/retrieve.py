"""Retrieve: the standalone query (a follow-up rewritten with its conversation), then the
search of the app's knowledge base. Retrieval that fails or runs out of its budget degrades:
the answer is generated without documents and says so."""

from __future__ import annotations

import asyncio
import logging

from groundgate.config import Settings
from groundgate.errors import GroundgateError
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Stage, span
from groundgate.retrieval.rewrite import standalone_query
from groundgate.retrieval.search import Retriever
from groundgate.store.knowledge import narrow_filters

log = logging.getLogger("groundgate.retrieval")


class Retrieve(Stage):
    name = "retrieve"

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings

    async def enter(self, ctx: RequestContext) -> None:
        with span(ctx.trace, "rewrite"):
            if not ctx.query:
                ctx.query = standalone_query(ctx.call.messages)
            ctx.trace.attrs["query"] = ctx.query
        with span(ctx.trace, "retrieve"):
            await self._search(ctx)

    async def _search(self, ctx: RequestContext) -> None:
        app = ctx.app
        if app is None or app.knowledge_base is None:
            return  # an agent app searches through its tools, if at all
        config = self.settings.kb_config(app.knowledge_base)
        try:
            # A model that has not loaded yet loads now, bounded by the request's deadline: the
            # budget below is for searching, and a first request must not lose its documents
            # to the process's one-time warm-up (models load lazily).
            await self.retriever.warm(config)
        except GroundgateError as exc:
            _degrade(ctx, exc)  # the embedder cannot load: the search could not run either
            return
        # Retrieval has its own budget: past it, answering without documents beats waiting.
        budget = min(app.retrieval_timeout_ms / 1000, max(ctx.remaining(), 0.0))
        try:
            async with asyncio.timeout(budget):
                result = await self.retriever.search(
                    ctx.tenant,
                    app.knowledge_base,
                    ctx.query,
                    config=config,
                    top_k=app.top_k,
                    # The app's filters are a floor: the request may narrow them, not lift them.
                    filters=narrow_filters(app.filters, ctx.filters),
                    trace=ctx.trace,
                )
        except GroundgateError as exc:
            if exc.status_code < 500:
                raise  # the request is wrong (bad filter, empty question): say so
            _degrade(ctx, exc)
            return
        except TimeoutError:
            _degrade(ctx, TimeoutError(f"retrieval took longer than {budget * 1000:.0f} ms"))
            return
        except Exception as exc:
            _degrade(ctx, exc)
            return
        ctx.passages = result.passages
        ctx.trace.attrs["retrieval"] = {
            **result.attrs(),
            "knowledge_base": app.knowledge_base,
            "passages": [
                {"chunk_id": p.chunk.id, "score": round(p.score, 6)} for p in result.passages
            ],
        }


def _degrade(ctx: RequestContext, exc: Exception) -> None:
    # Retrieval down: answer without documents rather than not at all, and say so.
    log.warning("retrieval failed for trace %s: %s", ctx.trace_id, type(exc).__name__)
    detail = str(exc) if isinstance(exc, TimeoutError) else type(exc).__name__
    ctx.retrieval_error = f"retrieval failed: {detail}"
    ctx.passages = []
