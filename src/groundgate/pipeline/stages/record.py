"""Record: the request's trace, started with the request and finished by this stage's exit
(always the outermost stage, so a refusal at admission is traced like any error)."""

from __future__ import annotations

import asyncio

from groundgate.errors import GroundgateError, HeldForReview
from groundgate.observe.drift import DriftMonitor
from groundgate.observe.metrics import Metrics
from groundgate.observe.trace import Trace
from groundgate.observe.trace_writer import TraceWriter
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.drift_feed import feed_drift
from groundgate.pipeline.stage import Outcome, Stage


class Record(Stage):
    name = "record"

    def __init__(
        self, metrics: Metrics, traces: TraceWriter, drift: DriftMonitor | None = None
    ) -> None:
        self.metrics = metrics
        self.traces = traces
        self.drift = drift  # None: drift is off, or watches nothing

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        trace = ctx.trace
        trace.latency_ms = trace.elapsed_ms()
        trace.deployment = ctx.deployment
        trace.source = ctx.source if ctx.deployment else None
        trace.prompt_tokens = ctx.usage.prompt_tokens
        trace.completion_tokens = ctx.usage.completion_tokens
        if ctx.usage.estimated:
            trace.attrs["usage_estimated"] = True
        trace.cost_usd = ctx.cost_usd
        if ctx.citations:
            trace.attrs["citations"] = ctx.citations
        if ctx.guards is not None:
            trace.attrs["guards"] = ctx.guards.summary()
        if ctx.route is not None:
            trace.attrs["route"] = ctx.route.summary()
        mark_error(trace, outcome.error)
        self.metrics.observe(trace)
        self.traces.submit(trace)
        if self.drift is not None:
            feed_drift(self.drift, ctx, outcome)


def mark_error(trace: Trace, error: BaseException | None) -> None:
    if error is None:
        return
    if isinstance(error, HeldForReview):
        # Answered, but to a reviewer: the client was told where to wait for it.
        trace.status, trace.http_status = "held", error.status_code
    elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        trace.status, trace.http_status = "cancelled", 499
        trace.error_type, trace.error_message = "client_disconnected", "the client went away"
    elif isinstance(error, GroundgateError):
        trace.status, trace.http_status = "error", error.status_code
        trace.error_type, trace.error_message = type(error).__name__, error.message
    else:
        trace.status, trace.http_status = "error", 500
        trace.error_type, trace.error_message = type(error).__name__, "internal error"
