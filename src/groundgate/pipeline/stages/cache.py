"""Cache: a lookup on the way in (a hit answers the request and skips the stages after it),
the write on the way out, of a complete answer, whole or streamed alike (what the client got:
``ctx.delivered``). What is cacheable and what is kept is the cache service's business
(``groundgate.cache.response``)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from groundgate.cache.answer import replay_chunks, replay_stream
from groundgate.cache.response import CacheState, ResponseCache
from groundgate.config_cache import CachePolicy
from groundgate.pipeline.answer import OneChunk, whole_chunk
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Outcome, Stage, span
from groundgate.providers.base import Completion, Usage

PolicyOf = Callable[[RequestContext], CachePolicy | None]


class Cache(Stage):
    name = "cache"
    span = "cache_lookup"

    def __init__(self, cache: ResponseCache, policy_of: PolicyOf) -> None:
        self.cache = cache
        self.policy_of = policy_of

    async def enter(self, ctx: RequestContext) -> None:
        state = ctx.cache = await self.cache.lookup(
            self.policy_of(ctx),
            tenant=ctx.tenant,
            target=ctx.app_name or ctx.model,
            call=ctx.call,
            app=ctx.app,
            filters=ctx.filters,
            read=ctx.cache_read,
            trace=ctx.trace,
            vectors=ctx.vectors,
            variant=ctx.variant,
            model=ctx.route.model if ctx.route is not None else None,
        )
        if state is not None and state.hit:
            _serve(ctx, state)

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        state = ctx.cache
        delivered = ctx.delivered
        if not outcome.ok or (state is not None and state.hit):
            return
        if delivered is None or not delivered.complete:
            return
        with span(ctx.trace, "cache_write"):
            if state is None:
                return
            await self.cache.write(
                state,
                delivered.choices(),
                delivered.fingerprint,
                allowed=ctx.cache_write,
                source=ctx.source,
                degraded=ctx.retrieval_error is not None,
                deployment=ctx.deployment,
                usage=ctx.usage,
                citations=ctx.citations,
                abstained=ctx.abstained,
                trace=ctx.trace,
            )


def _serve(ctx: RequestContext, state: CacheState) -> None:
    answer = state.answer
    assert answer is not None
    ctx.done = True
    ctx.source = "cache"
    ctx.deployment = answer.deployment
    ctx.citations = copy.deepcopy(answer.citations)
    ctx.abstained = answer.abstained
    ctx.usage = Usage()  # nothing was sent upstream: no tokens, no cost
    if ctx.stream:
        ctx.answer = replay_stream(replay_chunks(answer))
    else:
        ctx.completion = Completion(
            choices=copy.deepcopy(answer.choices),
            usage=Usage(),
            created=answer.created,
            system_fingerprint=answer.system_fingerprint,
        )
        ctx.answer = OneChunk(whole_chunk(ctx.completion))
