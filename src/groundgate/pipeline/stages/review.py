"""Review: answers put in the human review queue by the rules of ``guards.review``, held or
audited.

An answer is reviewed when a guard decided ``review`` (on the way in, or on the answer), when
its groundedness is below ``review.below_groundedness``, when ``review.always`` is set, when
its tenant is in ``review.tenants``, or when it falls in the ``review.sample`` share (drawn
from the trace id, which is random: the same request always draws the same).

* ``audit``: the answer goes out as it is; once the client has all of it, this stage's exit
  queues it (nothing of the answer's path changes, so no transform runs).
* ``hold``: the answer is held until this stage has seen all of it (only for a request that
  may be reviewed: one no rule can pick goes through untouched). One that is picked is queued
  and never reaches the client, the cache, or anything after: the client gets 202 with the
  review to poll (``HeldForReview``; a stream says it with a status too, ``Flight.prime``), or
  ``review.safe_answer`` as a normal answer.

What is queued is what the client got or would have got (placeholders of reversible PII
redaction put back), with the request as it was sent upstream.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

from groundgate.config_guards import GuardsConfig, ReviewPolicy
from groundgate.errors import HeldForReview
from groundgate.guards.decision import GuardDecision, GuardReport
from groundgate.guards.redaction import restore
from groundgate.guards.review_queue import ReviewQueue
from groundgate.pipeline.answer import AnswerRecord
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Outcome, Stage
from groundgate.providers.base import Chunk

# Output guards whose ``review`` action is decided on the answer, after this stage's
# transform has started (input guards have decided before the answer exists).
_OUTPUT_GUARDS = ("leak", "policy", "groundedness")


def review_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    guards = target.guards(services.settings)
    if not guards.review_on:
        return None
    return Review(services.reviews, guards, target.name)


class Review(Stage):
    name = "review"

    def __init__(self, queue: ReviewQueue, guards: GuardsConfig, target: str) -> None:
        self.queue = queue
        self.policy: ReviewPolicy = guards.review
        self.hold = self.policy.mode == "hold"
        self.target = target
        self._tenants = frozenset(self.policy.tenants)
        # Whether what the answer turns out to be can still put it in review.
        self._decided_late = self.policy.below_groundedness is not None or any(
            getattr(guards, name).action == "review" for name in _OUTPUT_GUARDS
        )

    # -- which requests -------------------------------------------------------------------

    def _fixed_reasons(self, ctx: RequestContext) -> list[str]:
        """The reasons known before the answer: the rules on the request alone."""
        policy = self.policy
        reasons = []
        if policy.always:
            reasons.append("always")
        if ctx.tenant in self._tenants:
            reasons.append("tenant")
        if policy.sample > 0 and sampled(ctx.trace_id, policy.sample):
            reasons.append("sampled")
        return reasons

    def reasons(self, ctx: RequestContext) -> list[str]:
        """Why this request's answer is reviewed (empty: it is not)."""
        reasons: list[str] = []
        report = ctx.guards
        if report is not None:
            for decision in report.decisions:
                if decision.action == "review" and decision.guard not in reasons:
                    reasons.append(decision.guard)
            threshold = self.policy.below_groundedness
            if (
                threshold is not None
                and report.groundedness is not None
                and report.groundedness < threshold
            ):
                reasons.append(f"groundedness<{threshold:g}")
        return reasons + self._fixed_reasons(ctx)

    def _may_review(self, ctx: RequestContext) -> bool:
        report = ctx.guards
        return (
            self._decided_late
            or (report is not None and report.review_requested)
            or bool(self._fixed_reasons(ctx))
        )

    def sees_answer(self, ctx: RequestContext) -> bool:
        # Audit mode decides at exit, from what the client got: the answer's path is untouched.
        return self.hold and self._may_review(ctx)

    def holds(self, ctx: RequestContext) -> bool:
        return self.hold and self._may_review(ctx)

    # -- hold -----------------------------------------------------------------------------

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        held = [chunk async for chunk in chunks]
        reasons = self.reasons(ctx)
        if not reasons:
            for chunk in held:
                yield chunk
            return
        record = AnswerRecord(whole=not ctx.stream)
        for chunk in held:
            record.add(chunk)
        answer = _restored(record.choices() or [], ctx.restore)
        review_id = await self._queue(ctx, reasons, answer)
        # What waits for a reviewer is no answer to keep: a later request must not be served
        # it (or the safe answer in its place) from the cache.
        ctx.cache_write = False
        safe = self.policy.safe_answer
        if safe is None:
            raise HeldForReview(review_id, ctx.trace_id)
        ctx.citations = []
        for chunk in _safe_answer(held, safe, stream=ctx.stream):
            yield chunk

    # -- audit ----------------------------------------------------------------------------

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        if self.hold or not outcome.ok:
            return
        delivered = ctx.delivered
        if delivered is None or not delivered.complete:
            return
        reasons = self.reasons(ctx)
        if reasons:
            await self._queue(ctx, reasons, delivered.choices() or [])

    # -- both -----------------------------------------------------------------------------

    async def _queue(
        self, ctx: RequestContext, reasons: list[str], answer: list[dict[str, Any]]
    ) -> str:
        started = time.perf_counter()
        report = ctx.guards = ctx.guards or GuardReport()
        principal = ctx.principal
        review = await self.queue.submit(
            tenant=ctx.tenant,
            target=ctx.app_name or ctx.model,
            trace_id=ctx.trace_id,
            key_id=principal.key_id if principal is not None else None,
            mode=self.policy.mode,
            reasons=reasons,
            messages=ctx.call.messages,
            answer=answer,
            guards=report.summary(),
        )
        report.add(
            GuardDecision(
                "review",
                self.policy.mode,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                detail={"reasons": reasons},
            )
        )
        report.review_id, report.review_mode = review.id, self.policy.mode
        return review.id


def sampled(trace_id: str, share: float) -> bool:
    """Whether a request falls in a ``share`` of all requests: its (random) trace id decides,
    so every stage and every call asks the same question with the same answer."""
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2.0**64 < share


def _restored(choices: list[dict[str, Any]], mapping: dict[str, str]) -> list[dict[str, Any]]:
    """The choices with the request's PII placeholders put back (copies: the held chunks
    share their messages)."""
    if not mapping:
        return choices
    restored = []
    for choice in choices:
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message = {**message, "content": restore(message["content"], mapping)}
            choice = {**choice, "message": message}
        restored.append(choice)
    return restored


def _safe_answer(held: list[Chunk], text: str, *, stream: bool) -> list[Chunk]:
    """``text`` as every choice's answer, in the held answer's shape: one chunk carrying the
    whole message (a whole answer), or the content then the finish (a stream)."""
    indexes = sorted({c.get("index", 0) for chunk in held for c in chunk.choices}) or [0]
    last = held[-1] if held else Chunk([])
    usage = next((c.usage for c in reversed(held) if c.usage is not None), None)
    first_id = held[0].id if held else None
    message = [
        {
            "index": i,
            "delta": {"role": "assistant", "content": text},
            "finish_reason": None if stream else "stop",
        }
        for i in indexes
    ]
    if not stream:
        return [Chunk(message, usage, first_id, last.system_fingerprint)]
    finish = [{"index": i, "delta": {}, "finish_reason": "stop"} for i in indexes]
    return [
        Chunk(message, None, first_id, last.system_fingerprint),
        Chunk(finish, usage, first_id, last.system_fingerprint),
    ]
