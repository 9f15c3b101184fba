"""The generate stage: call the chosen model through its fallback chain."""

from __future__ import annotations

from groundgate.pipeline.context import RequestContext
from groundgate.reliability.fallback import FallbackChain


class Generate:
    name = "generate"

    def __init__(self, chain: FallbackChain) -> None:
        self.chain = chain

    async def run(self, ctx: RequestContext) -> None:
        entry = ctx.entry
        if entry is None:
            raise RuntimeError("generate stage needs a resolved model (route stage first)")
        if ctx.stream:
            opened = await self.chain.open_stream(entry, ctx.call, ctx.deadline, ctx.trace)
            # The stream holds its deployment until it ends; the runtime reads and closes it.
            ctx.first_chunk, ctx.chunks = opened.result.first, opened.result
            deployment, fell_back = opened.deployment, opened.fell_back
        else:
            served = await self.chain.complete(entry, ctx.call, ctx.deadline, ctx.trace)
            completion = served.result
            ctx.completion = completion
            ctx.usage = completion.usage
            citations = completion.extra.get("citations")
            if isinstance(citations, list):
                ctx.citations = citations
            deployment, fell_back = served.deployment, served.fell_back
        ctx.deployment = deployment.id
        # Answered after a failed attempt, or without the documents an app should have used:
        # say so. (Which deployment a balancer tried first says nothing about that.)
        grounded = "rag" if ctx.app is not None else "model"
        ctx.source = "fallback" if fell_back or ctx.retrieval_error is not None else grounded
