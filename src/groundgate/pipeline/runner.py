"""The runner: one pipeline per app or model, serving every request, streamed or not.

``open`` enters the stages in order until one answers; the returned :class:`Flight` hands the
answer to the client through the stages' transforms and, once the request is over however it
ended, runs every entered stage's ``exit`` in reverse order (``close``). ``complete`` does all
of it for a whole answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing

from groundgate.errors import DeadlineExceeded
from groundgate.pipeline.answer import AnswerRecord, OneChunk
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Outcome, Stage, span, transforms
from groundgate.providers.base import Chunk
from groundgate.reliability.held_stream import close_quietly
from groundgate.shielded import start_shielded

log = logging.getLogger("groundgate.pipeline")


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.names = tuple(stage.name for stage in self.stages)
        self._transforming = frozenset(id(s) for s in self.stages if transforms(s))

    async def open(self, ctx: RequestContext) -> Flight:
        """Enter the stages in order until one answers. A request refused or failed on the way
        in is ended (exits run) before the error is raised."""
        flight = Flight(ctx, self._transforming)
        try:
            async with asyncio.timeout(max(ctx.remaining(), 0.0)):
                for stage in self.stages:
                    if ctx.done:
                        break
                    flight.entered.append(stage)
                    if stage.span is None:
                        await stage.enter(ctx)
                    else:
                        with span(ctx.trace, stage.span):
                            await stage.enter(ctx)
            if ctx.answer is None:
                raise RuntimeError(f"no stage of {self.names} answered the request")
        except TimeoutError:
            error = DeadlineExceeded("the request deadline passed before an answer was ready")
            await flight.close(error)
            raise error from None
        except BaseException as exc:
            await flight.close(exc)
            raise
        return flight

    async def complete(self, ctx: RequestContext) -> None:
        """Run a whole (not streamed) request to its end: ``ctx.completion`` holds the answer,
        and every exit has run."""
        flight = await self.open(ctx)
        try:
            await flight.collect()
        except BaseException as exc:
            await flight.close(exc)
            raise
        await flight.close()


class Flight:
    """A request that has its answer: on its way to the client, then ended."""

    __slots__ = ("_closed", "_ending", "_opened", "_primed", "_transforming", "ctx", "entered")

    def __init__(self, ctx: RequestContext, transforming: frozenset[int]) -> None:
        self.ctx = ctx
        self.entered: list[Stage] = []
        self._transforming = transforming
        self._opened: list[AsyncIterator[Chunk]] = []  # the transforms, innermost first
        self._closed = False
        self._ending: asyncio.Task[None] | None = None
        # prime(): the answer's stream, started, and the first chunk it gave (None: ended).
        self._primed: tuple[AsyncGenerator[Chunk, None], Chunk | None] | None = None

    @property
    def holds_answer(self) -> bool:
        """A streamed answer that a stage must see whole before the client sees any of it."""
        ctx = self.ctx
        return ctx.stream and any(
            id(s) in self._transforming and s.sees_answer(ctx) and s.holds(ctx)
            for s in self.entered
        )

    async def prime(self) -> None:
        """For an answer a stage holds (``holds_answer``), wait now for its first chunk: the
        holding stage has then had its say, and its refusal (a blocking guard, a schema that
        still fails, an answer held for review) can be an HTTP status rather than an error
        event inside a stream already answered 200. A no-op for any other answer. An error
        closes the flight and is raised."""
        if self._primed is not None or not self.holds_answer:
            return
        stream = self._chunks()
        try:
            first: Chunk | None = await anext(stream)
        except StopAsyncIteration:
            first = None
        except BaseException as exc:
            await close_quietly(stream)
            await self.close(exc)
            raise
        self._primed = (stream, first)

    def _answer(self) -> AsyncIterator[Chunk]:
        """The answer through the entered stages' transforms, innermost (last entered) first."""
        ctx = self.ctx
        stream = ctx.answer
        assert stream is not None
        for stage in reversed(self.entered):
            if id(stage) in self._transforming and stage.sees_answer(ctx):
                stream = stage.transform(ctx, stream)
                self._opened.append(stream)
                if ctx.stream and stage.holds(ctx):
                    stream = _held_to_the_end(stream)
                    self._opened.append(stream)
        return stream

    async def chunks(self) -> AsyncGenerator[Chunk, None]:
        """The answer as the client gets it, recorded in ``ctx.delivered``."""
        primed = self._primed
        if primed is None:
            async for chunk in self._chunks():
                yield chunk
            return
        stream, first = primed
        if first is None:
            return
        yield first
        async with aclosing(stream):
            async for chunk in stream:
                yield chunk

    async def _chunks(self) -> AsyncGenerator[Chunk, None]:
        ctx = self.ctx
        record = ctx.delivered = AnswerRecord(whole=not ctx.stream)
        first = True
        async for chunk in self._answer():
            if first and ctx.stream:
                ctx.trace.ttft_ms = ctx.trace.elapsed_ms()
                first = False
            record.add(chunk)
            yield chunk
        record.complete = True

    async def collect(self) -> None:
        """Take a whole answer through the transforms into ``ctx.completion``."""
        ctx = self.ctx
        answer = ctx.answer
        if isinstance(answer, OneChunk) and not any(
            id(s) in self._transforming and s.sees_answer(ctx) for s in self.entered
        ):
            # Nothing looks at the answer on its way out: take it as it is.
            record = ctx.delivered = AnswerRecord(whole=True)
            record.add(answer.chunk)
            record.complete = True
            return  # ctx.completion already holds it as it is
        async for _ in self.chunks():
            pass
        assert ctx.delivered is not None
        if ctx.completion is not None:
            ctx.completion.choices = ctx.delivered.choices() or []

    async def close(self, error: BaseException | None = None) -> None:
        """End the request: close what is still open, then every entered stage's exit, in
        reverse order. Idempotent. Anything but a whole answer's normal end runs out of its
        caller's cancellation's reach (a client gone mid-stream cancels every await)."""
        if self._closed:
            if self._ending is not None:
                await asyncio.shield(self._ending)
            return
        self._closed = True
        outcome = Outcome(error)
        if error is None and not self.ctx.stream:
            await self._end(outcome)
            return
        self._ending = start_shielded(self._end(outcome))
        await asyncio.shield(self._ending)

    async def _end(self, outcome: Outcome) -> None:
        ctx = self.ctx
        if self._primed is not None:
            await close_quietly(self._primed[0])
        for stream in reversed(self._opened):  # outermost first
            await close_quietly(stream)
        if ctx.answer is not None:
            await close_quietly(ctx.answer)
        for stage in reversed(self.entered):
            try:
                await stage.exit(ctx, outcome)
            except Exception:
                # One exit failing must not cost the others (settle, the trace).
                log.exception("exit of stage %s failed (trace %s)", stage.name, ctx.trace_id)


async def _held_to_the_end(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """Nothing until ``chunks`` ended: for a stage that must see the whole answer before the
    client sees any of it."""
    held = [chunk async for chunk in chunks]
    for chunk in held:
        yield chunk
