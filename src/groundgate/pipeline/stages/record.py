"""Record: the request's trace, started with the request and finished by this stage's exit
(always the outermost stage, so a refusal at admission is traced like any error)."""

from __future__ import annotations

import asyncio
from typing import Any

from groundgate.errors import GroundgateError, HeldForReview
from groundgate.observe.drift import DriftMonitor
from groundgate.observe.metrics import Metrics
from groundgate.observe.otel import OtelExport
from groundgate.observe.trace import ExportedContent, Trace
from groundgate.observe.trace_writer import TraceWriter
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.drift_feed import feed_drift
from groundgate.pipeline.stage import Outcome, Stage


class Record(Stage):
    name = "record"

    def __init__(
        self,
        metrics: Metrics,
        traces: TraceWriter,
        drift: DriftMonitor | None = None,
        otel: OtelExport | None = None,
    ) -> None:
        self.metrics = metrics
        self.traces = traces
        self.drift = drift  # None: drift is off, or watches nothing
        self.otel = otel  # None: no OpenTelemetry export

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
        if self.otel is not None:
            export_otel(self.otel, ctx)


def export_otel(otel: OtelExport, ctx: RequestContext) -> None:
    """Hand the finished trace to the OpenTelemetry export, with what only the request knows:
    the client's parameters, the finish reasons and (where the app opted in) the text."""
    trace = ctx.trace
    trace.params = ctx.call.params
    choices = ctx.delivered.choices() if ctx.delivered is not None else None
    if choices:
        trace.finish_reasons = tuple(
            str(c["finish_reason"]) for c in choices if c.get("finish_reason")
        )
    if otel.wants_content(ctx.app_name or ctx.model):
        # The messages as sent upstream (the guards' redaction applied), and the answer as
        # delivered with any PII the guards restored in it put back behind its placeholder.
        trace.content = ExportedContent(
            [dict(m) for m in ctx.call.messages],
            [_unrestored(c, ctx.restore) for c in choices or []],
        )
    otel.submit(trace)


def _unrestored(choice: dict[str, Any], restore: dict[str, str]) -> dict[str, Any]:
    message = choice.get("message")
    if not restore or not isinstance(message, dict) or not isinstance(message.get("content"), str):
        return choice
    text = message["content"]
    for placeholder, original in restore.items():
        text = text.replace(original, placeholder)
    return {**choice, "message": {**message, "content": text}}


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
