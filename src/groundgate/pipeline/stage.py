"""Stages are small objects with one ``run``; a pipeline is a list of them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from groundgate.observe.trace import Span
from groundgate.pipeline.context import RequestContext


class Stage(Protocol):
    name: str

    async def run(self, ctx: RequestContext) -> None: ...


class Pipeline:
    """Runs stages in order, one span per stage in the request's trace, until one of them
    answers the request (``ctx.done``)."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)

    async def run(self, ctx: RequestContext) -> None:
        trace = ctx.trace
        for stage in self.stages:
            if ctx.done:
                break
            started = time.perf_counter()
            span_start = (started - trace.started) * 1000.0
            status = "error"
            try:
                await stage.run(ctx)
                status = "ok"
            finally:
                trace.spans.append(
                    Span(stage.name, span_start, (time.perf_counter() - started) * 1000.0, status)
                )
