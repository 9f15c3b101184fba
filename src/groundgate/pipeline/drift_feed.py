"""What a finished request tells the drift monitor (``groundgate.observe.drift``), read from
what the stages already produced: nothing is computed for it."""

from __future__ import annotations

from groundgate.observe.drift import DriftMonitor
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Outcome


def drift_target(ctx: RequestContext) -> str:
    """The app or model whose traffic the request is (an ad-hoc knowledge-base question's
    ``kb:NAME`` matches no configured target, and is not watched)."""
    if ctx.app is not None:
        return ctx.app_name or ""
    return ctx.model


def feed_drift(drift: DriftMonitor, ctx: RequestContext, outcome: Outcome) -> None:
    target = drift_target(ctx)
    if not drift.watches(target):
        return
    # The question is what came in, whatever became of the request.
    retrieval = ctx.trace.attrs.get("retrieval")
    top_score: float | None = None
    if retrieval is not None:
        # The retriever's own ranking, before the passage guard dropped any; no passage at
        # all scores 0 (retrieval found nothing: a drift in itself).
        passages = retrieval.get("passages")
        top_score = float(passages[0]["score"]) if passages else 0.0
    answered = outcome.ok
    guards = ctx.guards
    drift.observe(
        target,
        vectors=ctx.vectors,
        retrieval_score=top_score,
        # Only grounded answers abstain; a failed request neither answered nor abstained.
        abstained=ctx.abstained if answered and ctx.app is not None else None,
        groundedness=guards.groundedness if answered and guards is not None else None,
    )
