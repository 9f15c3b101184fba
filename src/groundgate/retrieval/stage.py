"""The rewrite and retrieve stages of a grounded request."""

from __future__ import annotations

import logging

from groundgate.config import Settings
from groundgate.errors import GroundgateError
from groundgate.pipeline.context import RequestContext
from groundgate.retrieval.rewrite import standalone_query
from groundgate.retrieval.search import Retriever

log = logging.getLogger("groundgate.retrieval")


class RewriteQuery:
    name = "rewrite"

    async def run(self, ctx: RequestContext) -> None:
        if not ctx.query:
            ctx.query = standalone_query(ctx.call.messages)
        ctx.trace.attrs["query"] = ctx.query


class Retrieve:
    name = "retrieve"

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings

    async def run(self, ctx: RequestContext) -> None:
        app = ctx.app
        if app is None:
            return
        config = self.settings.kb_config(app.knowledge_base)
        try:
            result = await self.retriever.search(
                ctx.tenant,
                app.knowledge_base,
                ctx.query,
                config=config,
                top_k=app.top_k,
                filters={**app.filters, **ctx.filters},
                trace=ctx.trace,
            )
        except GroundgateError as exc:
            if exc.status_code < 500:
                raise  # the request is wrong (bad filter, empty question): say so
            self._degrade(ctx, exc)
            return
        except Exception as exc:
            self._degrade(ctx, exc)
            return
        ctx.passages = result.passages
        ctx.trace.attrs["retrieval"] = {
            **result.attrs(),
            "knowledge_base": app.knowledge_base,
            "passages": [
                {"chunk_id": p.chunk.id, "score": round(p.score, 6)} for p in result.passages
            ],
        }

    def _degrade(self, ctx: RequestContext, exc: Exception) -> None:
        # Retrieval down: answer without documents rather than not at all, and say so.
        log.warning("retrieval failed for trace %s: %s", ctx.trace_id, type(exc).__name__)
        ctx.retrieval_error = f"retrieval failed: {type(exc).__name__}"
        ctx.passages = []
