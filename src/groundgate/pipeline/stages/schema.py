"""Schema: an answer to ``response_format`` json_object / json_schema (and tool-call arguments)
validated (``guards/schema.py``); an invalid one re-asked with the validation error.

With ``action = "block"`` (the default) a streamed answer is held until it is checked. An
invalid answer goes back to the model, whole (not streamed), with what was wrong, up to
``max_reasks`` times; a valid one replaces it (as stream chunks for a streamed request), and
one still invalid after that is refused with :class:`SchemaValidationFailed` (502), which the
chat route can still answer as a status because the stream was held. ``flag`` checks and
records, passing the answer on as it came (a stream is not held). Each re-ask is a call through
the model's fallback chain: it shows in the trace's attempts (inside a ``schema`` span) and
its usage is billed with the request's (``ctx.extra_usage``, added by generate's exit).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from groundgate.config_guards import SchemaGuard
from groundgate.errors import SchemaValidationFailed
from groundgate.gateway.metering import billed_usage
from groundgate.guards.decision import GuardDecision, GuardReport
from groundgate.guards.schema import AnswerChecker, answer_checker, reask_messages, wants_check
from groundgate.pipeline.answer import AnswerRecord, answer_chunks
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage, span
from groundgate.providers.base import ChatCall, Chunk, Completion
from groundgate.reliability.fallback import FallbackChain


def schema_stage(services: Services, target: Target) -> Stage | None:
    """The stage for ``target``, or None when its guards leave it nothing to do."""
    guard = target.guards(services.settings).schema_
    if guard.action == "off":
        return None
    return Schema(services.chain, guard)


class Schema(Stage):
    name = "schema"

    def __init__(self, chain: FallbackChain, guard: SchemaGuard) -> None:
        self.chain = chain
        self.guard = guard
        self.blocks = guard.action == "block"

    def sees_answer(self, ctx: RequestContext) -> bool:
        return wants_check(ctx.call.params)

    def holds(self, ctx: RequestContext) -> bool:
        return self.blocks

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        checker = answer_checker(ctx.call.params)
        if checker is None:
            async for chunk in chunks:
                yield chunk
            return
        record = AnswerRecord(whole=not ctx.stream)
        if not self.blocks:
            async for chunk in chunks:
                record.add(chunk)
                yield chunk
            self._flag(ctx, checker, record)
            return
        held: list[Chunk] = []
        async for chunk in chunks:
            record.add(chunk)
            held.append(chunk)
        replacement = await self._checked(ctx, checker, record)
        for chunk in held if replacement is None else answer_chunks(replacement, ctx.stream):
            yield chunk

    def _flag(self, ctx: RequestContext, checker: AnswerChecker, record: AnswerRecord) -> None:
        started = time.perf_counter()
        choices = record.choices()
        errors = checker.check(choices) if choices is not None else []
        _decide(ctx, "flag" if errors else None, started, 0, errors)

    async def _checked(
        self, ctx: RequestContext, checker: AnswerChecker, record: AnswerRecord
    ) -> Completion | None:
        """None when the answer is valid as it is (or a stream that never finished: nothing
        whole to check); else the valid answer the model gave when asked again. Raises
        :class:`SchemaValidationFailed` when it gave none."""
        started = time.perf_counter()
        choices = record.choices()
        errors = checker.check(choices) if choices is not None else []
        if not errors or choices is None:
            _decide(ctx, None, started, 0, [])
            return None
        first, reasks, answer = errors, 0, None
        entry = ctx.entry
        assert entry is not None  # generate ran (an answer exists)
        with span(ctx.trace, "schema"):
            while errors and reasks < self.guard.max_reasks:
                reasks += 1
                call = ChatCall(
                    [*ctx.call.messages, *reask_messages(checker, choices, errors)],
                    ctx.call.params,
                )
                served = await self.chain.complete(entry, call, ctx.deadline, ctx.trace)
                answer = served.result
                ctx.extra_usage.append((served.deployment.id, billed_usage(call, answer)))
                choices = answer.choices
                errors = checker.check(choices)
            if errors:
                _decide(ctx, "block", started, reasks, errors)
                tries = "1 try" if reasks == 0 else f"{1 + reasks} tries"
                raise SchemaValidationFailed(
                    f"The model's answer does not match the requested format (after {tries}): "
                    + "; ".join(errors)
                )
        _decide(ctx, "reask", started, reasks, first)
        return answer


def _decide(
    ctx: RequestContext, action: str | None, started: float, reasks: int, errors: list[str]
) -> None:
    """Time spent on the check (re-asks included), and the decision if one was taken."""
    elapsed_ms = (time.perf_counter() - started) * 1000
    report = ctx.guards = ctx.guards or GuardReport()
    report.timed("schema", elapsed_ms)
    if action is not None:
        detail = {"reasks": reasks, "errors": errors}
        report.add(GuardDecision("schema", action, None, elapsed_ms, detail))
