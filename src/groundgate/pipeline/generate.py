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
            deployment, first, rest = await self.chain.open_stream(
                entry, ctx.call, ctx.deadline, ctx.trace
            )
            ctx.first_chunk, ctx.chunks = first, rest
        else:
            deployment, completion = await self.chain.complete(
                entry, ctx.call, ctx.deadline, ctx.trace
            )
            ctx.completion = completion
            ctx.usage = completion.usage
            citations = completion.extra.get("citations")
            if isinstance(citations, list):
                ctx.citations = citations
        ctx.deployment = deployment.id
        # Answered by a later link of the chain, or without the documents an app should have
        # used: say so.
        fell_back = deployment is not entry.deployments[0] or ctx.retrieval_error is not None
        grounded = "rag" if ctx.app is not None else "model"
        ctx.source = "fallback" if fell_back else grounded
