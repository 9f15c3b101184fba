"""What a stage is: an ``enter`` on the way in, an ``exit`` on the way out, and optionally a
``transform`` of the answer on its way to the client.

* ``enter(ctx)`` runs in pipeline order. It may answer the request itself (set ``ctx.answer``
  and ``ctx.done``: a cache hit; the stages after it are skipped) or refuse it (raise).
* ``transform(ctx, chunks)`` sees the answer, streamed or whole (a whole answer is a stream of
  one chunk, see ``answer.py``): it may pass, rewrite, hold back or stop chunks. Transforms
  apply innermost first: a stage sees the answer as the stages after it left it.
* ``exit(ctx, outcome)`` is always called, in reverse order, for every stage whose ``enter``
  ran (the one that raised included), once the request is over: answered, failed, the client
  gone, a stream run to its end or abandoned. ``ctx.delivered`` is what the client was given.

A stage that must see the whole answer before the client sees any of it (a blocking output
check) sets ``needs_whole_answer``: its output is then held until its transform is done, which
buffers streams of that pipeline (see README, "Pipelines").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from groundgate.observe.trace import Span, Trace
from groundgate.pipeline.context import RequestContext
from groundgate.providers.base import Chunk


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended: ``error`` is None when it was answered in full."""

    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cancelled(self) -> bool:
        return isinstance(self.error, (asyncio.CancelledError, GeneratorExit))


class Stage:
    """A stage that does nothing; real ones override what they need."""

    name: ClassVar[str]  # the name config uses (``stages = [...]``) and the registry knows
    # The span its enter is recorded as; None: no span (or the stage records its own).
    span: ClassVar[str | None] = None
    # Per stage instance: a stage built for a target whose config needs it holds the answer.
    needs_whole_answer: bool = False

    async def enter(self, ctx: RequestContext) -> None:
        return None

    async def exit(self, ctx: RequestContext, outcome: Outcome) -> None:
        return None

    def sees_answer(self, ctx: RequestContext) -> bool:
        """Whether this request's answer goes through ``transform`` (a stage that overrides
        it but has nothing to do for a request says no: a whole answer nothing transforms is
        taken as it is, without a stream around it)."""
        return True

    def holds(self, ctx: RequestContext) -> bool:
        """Whether this request's streamed answer is held until ``transform`` is done with
        all of it (see the module docstring)."""
        return self.needs_whole_answer

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        """Pass the answer on unchanged. A stage that overrides this sees every answer of its
        pipeline; one that does not costs nothing per chunk (the runner skips it)."""
        async for chunk in chunks:
            yield chunk


def transforms(stage: Stage) -> bool:
    return type(stage).transform is not Stage.transform


@contextmanager
def span(trace: Trace, name: str) -> Iterator[None]:
    """Record the block as one span of ``trace`` (status "error" if it raised)."""
    started = time.perf_counter()
    start_ms = (started - trace.started) * 1000.0
    status = "error"
    try:
        yield
        status = "ok"
    finally:
        trace.spans.append(Span(name, start_ms, (time.perf_counter() - started) * 1000.0, status))
