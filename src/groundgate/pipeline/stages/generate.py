"""Generate: the chosen model called through its fallback chain, whole or streamed.

A stream holds its deployment until it ends (``reliability.held_stream``); this stage's exit
ends it (however far it got) and bills it: usage as the upstream reported it, else estimated
from the prompt and what was generated (a stream cut short, an upstream that leaves usage out),
never as free; plus what later calls for the same answer used (``ctx.extra_usage``: schema
re-asks), each at its own deployment's price.
"""

from __future__ import annotations

from groundgate.gateway.metering import StreamMeter, billed_usage
from groundgate.observe.cost import PriceTable
from groundgate.pipeline.answer import OneChunk, whole_chunk
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Outcome, Stage
from groundgate.providers.base import Chunk, Usage
from groundgate.reliability.fallback import FallbackChain
from groundgate.reliability.held_stream import HeldStream


class Generate(Stage):
    name = "generate"
    span = "generate"

    def __init__(self, chain: FallbackChain, prices: PriceTable) -> None:
        self.chain = chain
        self.prices = prices

    async def enter(self, ctx: RequestContext) -> None:
        entry = ctx.entry
        if entry is None:
            raise RuntimeError("generate stage needs a resolved model (route stage first)")
        if ctx.stream:
            opened = await self.chain.open_stream(entry, ctx.call, ctx.deadline, ctx.trace)
            ctx.answer = MeteredStream(ctx, opened.result)
            deployment, fell_back = opened.deployment, opened.fell_back
        else:
            served = await self.chain.complete(entry, ctx.call, ctx.deadline, ctx.trace)
            completion = served.result
            ctx.completion = completion
            ctx.usage = billed_usage(ctx.call, completion)
            citations = completion.extra.get("citations")
            if isinstance(citations, list):
                ctx.citations = citations
            ctx.answer = OneChunk(whole_chunk(completion))
            deployment, fell_back = served.deployment, served.fell_back
        ctx.deployment = deployment.id
        # Answered after a failed attempt, or without the documents an app should have used:
        # say so. (Which deployment a balancer tried first says nothing about that.)
        grounded = "rag" if ctx.app is not None else "model"
        ctx.source = "fallback" if fell_back or ctx.retrieval_error is not None else grounded

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        answer = ctx.answer
        if isinstance(answer, MeteredStream):
            await answer.aclose()  # frees the deployment (the runner may have done so already)
            if not answer.meter.reported:
                ctx.usage = answer.meter.estimate(ctx.call)
        ctx.cost_usd = self.prices.cost(ctx.deployment, ctx.usage)
        for deployment, usage in ctx.extra_usage:  # after the stream's own estimate above
            ctx.cost_usd += self.prices.cost(deployment, usage)
            ctx.usage = Usage(
                ctx.usage.prompt_tokens + usage.prompt_tokens,
                ctx.usage.completion_tokens + usage.completion_tokens,
                estimated=ctx.usage.estimated or usage.estimated,
            )


class MeteredStream:
    """A held upstream stream that keeps what it reports along the way (usage, the last one
    wins; a plain model's citations) and counts what it generated. Its first chunk is counted
    at once: the upstream sent it, whether or not the client ever reads it."""

    def __init__(self, ctx: RequestContext, held: HeldStream) -> None:
        self._ctx = ctx
        self._held = held
        self._first: Chunk | None = held.first
        self.meter = StreamMeter()
        self._absorb(held.first)

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> Chunk:
        first = self._first
        if first is not None:
            self._first = None
            return first
        chunk = await anext(self._held)
        self._absorb(chunk)
        return chunk

    async def aclose(self) -> None:
        self._first = None
        await self._held.aclose()

    def _absorb(self, chunk: Chunk) -> None:
        self.meter.add(chunk)
        ctx = self._ctx
        if chunk.usage is not None:
            ctx.usage = chunk.usage
        if chunk.extra and ctx.app is None:
            citations = chunk.extra.get("citations")
            if isinstance(citations, list):
                ctx.citations = citations
