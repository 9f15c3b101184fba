"""Guard out: the answer checked before the client sees it: PII and secret leaks, deny patterns,
groundedness (``groundgate.guards.output_check``).

A whole answer, and a stream whose guards decide on all of it (block, review, remove,
abstain), are checked whole (the stream is held). A stream whose guards only flag or redact
goes out as it comes, less a small window per choice that keeps a span split across chunks
whole (``guards/stream_text.py``); what it found is recorded when it ends. The reversible PII
placeholders of the client's own input (``ctx.restore``) are not leaks: ``guard_in``, the
outer transform, puts them back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from groundgate.config_guards import GuardsConfig
from groundgate.guards.decision import GuardReport
from groundgate.guards.output_check import AnswerCheck, Grounding, holds
from groundgate.guards.stream_text import HeldBack, StreamRewriter, rewritten, texts_of
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage
from groundgate.providers.base import Chunk
from groundgate.providers.local.sentences import message_text


def guard_out_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    guards = target.guards(services.settings)
    if all(g.action == "off" for g in (guards.leak, guards.policy, guards.groundedness)):
        return None
    return GuardOut(guards)


class GuardOut(Stage):
    name = "guard_out"

    def __init__(self, guards: GuardsConfig) -> None:
        self.guards = guards

    def _grounded(self, ctx: RequestContext) -> bool:
        return ctx.app is not None and self.guards.groundedness.action != "off"

    def sees_answer(self, ctx: RequestContext) -> bool:
        guards = self.guards
        return guards.leak.action != "off" or guards.policy.action != "off" or self._grounded(ctx)

    def holds(self, ctx: RequestContext) -> bool:
        return holds(self.guards, self._grounded(ctx))

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        ctx.guards = report = ctx.guards or GuardReport()
        check = AnswerCheck(self.guards, report, _grounding(ctx), tuple(ctx.restore))
        if ctx.stream and not self.holds(ctx):
            async for chunk in _on_the_way(ctx, check, chunks):
                yield chunk
            return
        held = [chunk async for chunk in chunks]
        texts = texts_of(held)
        if not texts:  # tool calls only: nothing to check
            for chunk in held:
                yield chunk
            return
        result = await check.whole(texts, ctx.deadline)
        out = rewritten(held, result.texts, result.finish)
        if result.abstained:
            # The cite stage reads the answer's own report (the local answerer's) first.
            out = [
                replace(c, extra={**c.extra, "abstained": True, "citations": []}) if c.extra else c
                for c in out
            ]
        for chunk in out:
            yield chunk


async def _on_the_way(
    ctx: RequestContext, check: AnswerCheck, chunks: AsyncIterator[Chunk]
) -> AsyncIterator[Chunk]:
    """A stream rewritten as it goes (when anything rewrites it), judged at its end."""
    raw: dict[int, str] = {}
    rewriter = (
        StreamRewriter(lambda: HeldBack(check.find, check.rewrite))
        if check.rewrites_stream
        else None
    )
    async for chunk in chunks:
        for index, text in texts_of((chunk,)).items():
            raw[index] = raw.get(index, "") + text
        yield chunk if rewriter is None else rewriter.rewrite(chunk)
    rest = rewriter.rest() if rewriter is not None else None
    if rest is not None:
        yield rest
    await check.judge_stream(raw, ctx.deadline)


def _grounding(ctx: RequestContext) -> Grounding | None:
    if ctx.app is None:
        return None
    sources = sorted(ctx.sources, key=lambda s: s.n)
    cited = {s.chunk.id for s in sources}
    evidence = [_passage(s.chunk.title, s.chunk.text) for s in sources] + [
        _passage(p.chunk.title, p.chunk.text) for p in ctx.passages if p.chunk.id not in cited
    ]
    users = [message_text(m) for m in ctx.call.messages if m.get("role") == "user"]
    question = " ".join(q for q in (ctx.query, users[-1] if users else "") if q)
    return Grounding([s.chunk.text for s in sources], evidence, question)


def _passage(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text
