"""The pipeline enters stages in order and records one span per stage, failed ones included."""

from __future__ import annotations

import time

import pytest

from groundgate.errors import InvalidRequest
from groundgate.observe.trace import Trace
from groundgate.pipeline.answer import OneChunk
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.runner import Pipeline
from groundgate.pipeline.stage import Stage
from groundgate.providers.base import ChatCall, Chunk


class Record(Stage):
    def __init__(self, name: str, seen: list[str], fail: bool = False) -> None:
        self.name = name  # type: ignore[misc]
        self.span = name  # type: ignore[misc]
        self.seen = seen
        self.fail = fail

    async def enter(self, ctx: RequestContext) -> None:
        self.seen.append(self.name)
        if self.fail:
            raise InvalidRequest(f"{self.name} refused")
        ctx.answer = OneChunk(Chunk([]))


def context() -> RequestContext:
    trace = Trace(id="t", tenant="default", endpoint="chat.completions", model="m")
    return RequestContext(
        trace=trace, model="m", call=ChatCall(messages=[]), deadline=time.monotonic() + 5
    )


async def test_stages_run_in_order_with_spans() -> None:
    seen: list[str] = []
    ctx = context()
    await Pipeline([Record("a", seen), Record("b", seen), Record("c", seen)]).complete(ctx)
    assert seen == ["a", "b", "c"]
    assert [s.name for s in ctx.trace.spans] == ["a", "b", "c"]
    assert all(s.status == "ok" and s.duration_ms >= 0 for s in ctx.trace.spans)
    starts = [s.start_ms for s in ctx.trace.spans]
    assert starts == sorted(starts)


async def test_failing_stage_stops_the_pipeline_and_is_recorded() -> None:
    seen: list[str] = []
    ctx = context()
    with pytest.raises(InvalidRequest):
        await Pipeline(
            [Record("a", seen), Record("b", seen, fail=True), Record("c", seen)]
        ).complete(ctx)
    assert seen == ["a", "b"]
    assert [(s.name, s.status) for s in ctx.trace.spans] == [("a", "ok"), ("b", "error")]


def test_remaining_counts_down() -> None:
    ctx = context()
    assert 4 < ctx.remaining() <= 5
