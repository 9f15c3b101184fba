"""Cascade: the cheapest tier answers first; its answer is scored and, when the score is low, the
next tier is asked instead (the client only ever sees the answer that is kept).

The route stage (router ``cascade``) sends the request to the cheapest tier. This stage holds
that answer, whole or streamed, and scores it (``routing/scoring.py``: the form checks, or a
learned verifier; plus JSON asked for but not given, and an output guard's block or review
when ``guard_out`` ran before it). Below the threshold the next tier is asked, whole, through
its own fallback chain, at most ``cascade.max_escalations`` times; its answer replaces the
held one (as stream chunks for a streamed request: escalation happens before the client's
first byte). If the next tier fails, the answer in hand is kept. Every call is billed at its
own deployment's price (``ctx.extra_usage``), each step is in ``ctx.route.escalations`` and
the trace (a ``cascade`` span and its attempts).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from groundgate.config_routing import CascadeConfig
from groundgate.errors import Overloaded, ProviderError
from groundgate.gateway.metering import billed_usage
from groundgate.guards.messages import last_user_text
from groundgate.pipeline.answer import AnswerRecord, OneChunk, answer_chunks, whole_chunk
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage, span
from groundgate.pipeline.stages.generate import MeteredStream
from groundgate.pipeline.stages.route import target_route
from groundgate.providers.base import Chunk, Completion, Usage
from groundgate.reliability.fallback import FallbackChain, Served
from groundgate.routing.decision import RouteDecision
from groundgate.routing.scoring import AnswerScorer, form_problem, shipped_scorer
from groundgate.routing.tiers import Tier, Tiers

# Output guards whose block or review of the cheap answer sends the request up.
_OUTPUT_GUARDS = frozenset({"leak", "policy", "groundedness", "schema"})


def cascade_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its config leaves it nothing to do."""
    route = target_route(target)
    if route is None or route.router != "cascade" or len(route.tiers) < 2:
        return None
    tiers = Tiers(target.name, route, services.catalog, services.prices)
    return Cascade(services.chain, tiers, route.cascade, shipped_scorer())


class Cascade(Stage):
    name = "cascade"

    def __init__(
        self, chain: FallbackChain, tiers: Tiers, config: CascadeConfig, scorer: AnswerScorer
    ) -> None:
        self.chain = chain
        self.tiers = tiers
        self.max_escalations = config.max_escalations
        self.scorer = scorer
        self.threshold = config.threshold if config.threshold is not None else scorer.threshold

    def sees_answer(self, ctx: RequestContext) -> bool:
        decision = ctx.route
        return (
            decision is not None
            and decision.router == "cascade"
            and self.tiers.above(self.tiers.get(decision.tier)) is not None
        )

    def holds(self, ctx: RequestContext) -> bool:
        return True  # a streamed answer may be replaced: nothing reaches the client before

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        record = AnswerRecord(whole=not ctx.stream)
        held: list[Chunk] = []
        async for chunk in chunks:
            record.add(chunk)
            held.append(chunk)
        choices = record.choices()
        decision = ctx.route
        kept = None
        if choices is not None and decision is not None:  # a stream that ended has choices
            kept = await self._climb(ctx, decision, choices)
        for chunk in held if kept is None else answer_chunks(kept, ctx.stream):
            yield chunk

    async def _climb(
        self, ctx: RequestContext, decision: RouteDecision, choices: list[dict[str, Any]]
    ) -> Completion | None:
        """Escalate while the answer in hand scores low: the answer that replaces the held
        one, or None to keep it."""
        tier = self.tiers.get(decision.tier)
        kept: Completion | None = None
        for _ in range(self.max_escalations):
            up = self.tiers.above(tier)
            if up is None:
                break
            why, score = await self._judge(ctx, choices)
            decision.score = score
            if why is None:
                break
            step: dict[str, Any] = {"from": tier.name, "to": up.name, "score": round(score, 4)}
            step["reason"] = why
            try:
                with span(ctx.trace, "cascade"):
                    served = await self.chain.complete(up.entry, ctx.call, ctx.deadline, ctx.trace)
            except (ProviderError, Overloaded) as exc:
                # The next tier is down or full: the answer in hand is better than none.
                decision.escalations.append({**step, "error": type(exc).__name__})
                break
            answer = served.result
            usage = billed_usage(ctx.call, answer)
            step["cost_usd"] = await self._replace(ctx, tier, up, served, usage)
            if served.fell_back:
                ctx.source = "fallback"
            decision.escalations.append(step)
            decision.tier, decision.model = up.name, up.model
            ctx.completion = kept = answer
            tier, choices = up, answer.choices
        return kept

    async def _judge(
        self, ctx: RequestContext, choices: list[dict[str, Any]]
    ) -> tuple[str | None, float]:
        """Why the answer should go up (None: it stays), and its score."""
        choice = choices[0] if choices else {}
        message = choice.get("message") or {}
        content = message.get("content")
        answer = content if isinstance(content, str) else ""
        if not answer and message.get("tool_calls"):
            answer = orjson.dumps(message["tool_calls"]).decode()
        finish = choice.get("finish_reason")
        problem = _request_problem(ctx, answer, bool(message.get("tool_calls")))
        if problem is not None:
            return problem, 0.0
        prompt = last_user_text(ctx.call.messages)
        scorer = self.scorer
        if scorer.blocking:
            score = await asyncio.to_thread(scorer.score, prompt, answer, finish)
        else:
            score = scorer.score(prompt, answer, finish)
        if score >= self.threshold:
            return None, score
        return form_problem(answer, finish) or f"score below {self.threshold:g}", score

    async def _replace(
        self, ctx: RequestContext, tier: Tier, up: Tier, served: Served[Completion], usage: Usage
    ) -> float:
        """Make the next tier's call the request's answer (``deployment``, ``usage``,
        ``answer``: what generate's exit bills first); the discarded call is billed as an extra
        call at its own price. Returns what the discarded call cost."""
        held = ctx.answer
        discarded = ctx.usage
        if isinstance(held, MeteredStream):
            # Read to its end already: usage as reported, else counted from what it sent. It is
            # closed (its deployment freed) and replaced, so generate's exit does not count it
            # again.
            if not held.meter.reported:
                discarded = held.meter.estimate(ctx.call)
            await held.aclose()
        ctx.answer = OneChunk(whole_chunk(served.result))
        ctx.extra_usage.append((ctx.deployment or "", discarded))
        cost = self.tiers.cost(tier, discarded, ctx.deployment)
        ctx.deployment, ctx.usage, ctx.entry = served.deployment.id, usage, up.entry
        return cost


def _request_problem(ctx: RequestContext, answer: str, tool_calls: bool) -> str | None:
    """What the request itself says is wrong with the answer: JSON asked for and not given,
    an output guard that blocked or held it."""
    response_format = ctx.call.params.get("response_format")
    wants_json = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    if wants_json and not tool_calls:
        try:
            orjson.loads(answer)
        except orjson.JSONDecodeError:
            return "invalid JSON"
    report = ctx.guards
    if report is not None:
        for decision in report.decisions:
            if decision.guard in _OUTPUT_GUARDS and decision.action in ("block", "review"):
                return f"guard {decision.guard}: {decision.action}"
    return None
