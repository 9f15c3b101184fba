"""The bounded tool loop, in one place.

Each step sends the conversation and the app's tools (OpenAI ``tools`` format) to the model
through the fallback chain (retries, fallbacks and breakers apply as for any answer). A reply
without tool calls is the final answer. A reply with tool calls has them checked and run:

* arguments parsed and validated against the tool's JSON Schema (invalid: an error result the
  model reads, counted as a call);
* a tool's own ``max_calls`` per run (beyond it: an error result);
* calls to an ``irreversible`` tool are not run: the run pauses for approval (``pending``)
  after the other calls of the step ran;
* the rest run, concurrently when ``parallel_tools``, each within its ``timeout_s`` (and the
  run's deadline); a failure or a timeout is an error result, never the run's end;
* results pass the indirect-injection guard when the app's guards turn it on (fenced or
  dropped), then go back to the model as ``tool`` messages.

The run stops with what it has when a limit is reached (checked before any call is made, so a
limit is never overrun by more than the step that reached it): ``max_steps`` (model calls),
``max_tool_calls``, ``max_tokens`` and ``max_cost`` (over the whole run), ``deadline`` (wall
clock spent running), ``loop_detected`` (the same call proposed ``loop_repeats`` times).
``RunRecord.stop_reason`` says which; its answer says the run stopped, after the model's last
words. Every step and call is a span of the trace and an entry of ``RunRecord.steps``.

``run`` is an async generator of progress events (for a stream's progress comments); whoever
does not need them drains it (``drive``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from groundgate.agents.result_guard import ResultGuard
from groundgate.agents.toolbox import Arguments, ReadyTool, ToolBox
from groundgate.config_agent import AgentLimits
from groundgate.errors import DeadlineExceeded, UpstreamTimeout
from groundgate.gateway.metering import billed_usage
from groundgate.observe.cost import PriceTable
from groundgate.observe.trace import Span, Trace
from groundgate.providers.base import ChatCall
from groundgate.providers.catalog import CatalogEntry
from groundgate.reliability.fallback import FallbackChain
from groundgate.store.runs import ApprovalDecision, RunRecord, StopReason
from groundgate.tools.base import ToolContext, ToolResult

Progress = dict[str, Any]
_PREVIEW = 300  # characters of arguments and results kept in a span
# Less time than this left: no model call can answer in it; the run stops at its deadline.
_DEADLINE_SLACK_S = 0.05

_WHY = {
    "max_steps": "it reached its limit of {l.max_steps} model calls",
    "max_tool_calls": "it reached its limit of {l.max_tool_calls} tool calls",
    "max_tokens": "it used its budget of {l.max_tokens} tokens",
    "max_cost": "it reached its cost limit of ${l.max_cost_usd:g}",
    "deadline": "it ran out of time ({l.deadline_s:g}s)",
    "loop_detected": "it kept proposing the same tool call",
    "cancelled": "the request that ran it ended first (the client went away)",
}


@dataclass(slots=True)
class RunState:
    """One run as this process executes it: the persisted record and what it runs with."""

    record: RunRecord
    box: ToolBox
    entry: CatalogEntry  # the model each step calls
    limits: AgentLimits
    trace: Trace
    tool_ctx: ToolContext
    deadline: float  # time.monotonic() at which the run stops (its limit or the request's)
    params: dict[str, Any]  # what every step sends besides the messages (tools included)
    guard: ResultGuard | None = None
    deployment: str | None = None  # the deployment of the last step
    # Derived from the record's steps when the state is built (a resumed run counts on).
    signatures: Counter[str] = field(default_factory=Counter)
    per_tool: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for entry in self.record.steps:
            # A refused call was proposed too (an approved one is logged again when it runs):
            # a model that insists on a rejected call is a loop, across pauses as within one.
            refused = entry.get("kind") == "decision" and entry.get("approved") is False
            if (entry.get("kind") == "tool" or refused) and "signature" in entry:
                self.signatures[entry["signature"]] += 1
                self.per_tool[entry["tool"]] += 1


@dataclass(frozen=True, slots=True)
class _Proposed:
    call: dict[str, Any]  # the OpenAI tool_call object
    ready: ReadyTool | None
    arguments: Arguments
    signature: str

    @property
    def id(self) -> str:
        return str(self.call.get("id") or "")

    @property
    def name(self) -> str:
        return str((self.call.get("function") or {}).get("name") or "")


class AgentLoop:
    def __init__(self, chain: FallbackChain, prices: PriceTable) -> None:
        self.chain = chain
        self.prices = prices

    async def run(self, state: RunState) -> AsyncGenerator[Progress, None]:
        """Step until the run ends (``completed``/``stopped``) or pauses
        (``pending_approval``); ``state.record`` says which. A model that cannot be reached
        ends the run ``failed`` and the error is raised."""
        record = state.record
        record.status = "running"
        started = time.monotonic()
        try:
            while True:
                reason = self._limit(state)
                if reason is not None:
                    yield self.stop(state, reason)
                    return
                message = await self._step(state)
                if message is None:
                    yield self.stop(state, "deadline")
                    return
                calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
                step = record.usage.steps
                yield {"type": "step", "step": step, "tool_calls": [_name(c) for c in calls]}
                if not calls:
                    content = message.get("content")
                    record.status, record.stop_reason = "completed", "final_answer"
                    record.answer = content if isinstance(content, str) else ""
                    yield {"type": "done", "stop_reason": "final_answer"}
                    return
                reason = self._limit(state)
                if reason is None and record.usage.tool_calls + len(calls) > (
                    state.limits.max_tool_calls
                ):
                    reason = "max_tool_calls"
                proposed = [self._propose(state, c) for c in calls]
                if reason is None and any(
                    state.signatures[p.signature] + 1 >= state.limits.loop_repeats for p in proposed
                ):
                    reason = "loop_detected"
                if reason is not None:
                    yield self.stop(state, reason)
                    return
                record.messages.append(_assistant(message, calls))
                async for event in self._act(state, step, proposed):
                    yield event
                if record.pending:
                    record.status = "pending_approval"
                    yield {"type": "pending_approval", "calls": pending_view(record.pending)}
                    return
        except (asyncio.CancelledError, GeneratorExit):
            # The request ended under the run (a client gone mid-stream cancels it, or closes
            # its stream at a progress event): stopped, and said so, not a failure.
            if record.status == "running":
                self.stop(state, "cancelled")
            raise
        except BaseException:
            if record.status == "running":
                record.status, record.stop_reason = "failed", "error"
            raise
        finally:
            record.usage.elapsed_s += time.monotonic() - started
            state.trace.attrs["agent"] = summary(record)

    async def decided(
        self, state: RunState, decision: ApprovalDecision
    ) -> AsyncGenerator[Progress, None]:
        """Settle the run's pending calls as a reviewer decided (run them, with any edited
        arguments, or tell the model they were refused), then step on."""
        record = state.record
        pending, record.pending = record.pending, []
        step = record.usage.steps
        for call in pending:
            held = self._propose(state, call)
            record.steps.append(
                {
                    "kind": "decision",
                    "step": step,
                    "call_id": call.get("id"),
                    "tool": held.name,
                    "signature": held.signature,
                    "approved": decision.approve,
                    "by": decision.decided_by,
                }
            )
            if not decision.approve:
                _count(state, held)
        if decision.approve:
            edits = decision.arguments or {}
            proposed = []
            for call in pending:
                call_id = str(call.get("id") or "")
                if call_id in edits:
                    function = {**call["function"], "arguments": _json(edits[call_id])}
                    call = {**call, "function": function}
                proposed.append(self._propose(state, call, approved=True))
                _count(state, proposed[-1])
            async for event in self._act(state, step, proposed, approved=True):
                yield event
        else:
            refusal = "The call was refused by a human reviewer"
            refusal += f" ({decision.note})." if decision.note else "."
            for call in pending:
                text = f"Error: {refusal} Do not try it again; answer without it."
                record.messages.append(_tool_message(str(call.get("id") or ""), text))
        async for event in self.run(state):
            yield event

    # -- one model call -------------------------------------------------------------------

    async def _step(self, state: RunState) -> dict[str, Any] | None:
        """Call the model once; its message, or None when the deadline passed first."""
        record, trace = state.record, state.trace
        call = ChatCall(messages=record.messages, params=state.params)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(max(state.deadline - time.monotonic(), 0.0)):
                served = await self.chain.complete(state.entry, call, state.deadline, trace)
        except (TimeoutError, UpstreamTimeout) as exc:
            # The run's deadline cut the call short (a deployment that is merely slow, with
            # time left, is the chain's failure and raised as such).
            cut_short = isinstance(exc, (TimeoutError, DeadlineExceeded))
            if not cut_short and time.monotonic() < state.deadline - _DEADLINE_SLACK_S:
                raise
            _span(trace, "agent.step", started, "error", {"step": record.usage.steps + 1})
            return None
        completion = served.result
        usage = billed_usage(call, completion)
        cost = self.prices.cost(served.deployment.id, usage)
        total = record.usage
        total.steps += 1
        total.prompt_tokens += usage.prompt_tokens
        total.completion_tokens += usage.completion_tokens
        total.cost_usd += cost
        state.deployment = served.deployment.id
        choice = completion.choices[0] if completion.choices else {}
        message = choice.get("message") or {}
        calls = message.get("tool_calls") or []
        entry = {
            "kind": "step",
            "step": total.steps,
            "deployment": served.deployment.id,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": round(cost, 10),
            "finish_reason": choice.get("finish_reason"),
            "tool_calls": [_name(c) for c in calls if isinstance(c, dict)],
        }
        record.steps.append(entry)
        _span(trace, "agent.step", started, "ok", entry)
        return message if isinstance(message, dict) else {}

    # -- the calls of one step ------------------------------------------------------------

    def _propose(
        self, state: RunState, call: dict[str, Any], *, approved: bool = False
    ) -> _Proposed:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        raw = function.get("arguments")
        ready = state.box.get(name)
        arguments = state.box.arguments(ready, raw)
        canonical = _json(arguments.value) if arguments.valid else str(raw)
        return _Proposed(call, ready, arguments, f"{name}:{canonical}")

    async def _act(
        self, state: RunState, step: int, proposed: list[_Proposed], *, approved: bool = False
    ) -> AsyncIterator[Progress]:
        """Check, run (or hold for approval) and answer each call of one step."""
        record = state.record
        results: dict[str, ToolResult] = {}
        runnable: list[_Proposed] = []
        for p in proposed:
            if not approved:
                record.usage.tool_calls += 1
                state.signatures[p.signature] += 1
                state.per_tool[p.name] += 1
            refusal = self._refusal(state, p)
            if refusal is not None:
                results[p.id] = ToolResult(refusal, is_error=True)
            elif p.ready is not None and p.ready.tool.spec.irreversible and not approved:
                record.pending.append(p.call)
            else:
                runnable.append(p)
        timings: dict[str, tuple[float, float]] = {}

        async def one(p: _Proposed) -> None:
            assert p.ready is not None
            started = time.perf_counter()
            remaining = state.deadline - time.monotonic()
            timeout = min(p.ready.tool.spec.timeout_s, remaining)
            results[p.id] = await state.box.call(
                p.ready, p.arguments.value, state.tool_ctx, timeout
            )
            timings[p.id] = (started, time.perf_counter())

        if state.limits.parallel_tools and len(runnable) > 1:
            await asyncio.gather(*(one(p) for p in runnable))
        else:
            for p in runnable:
                await one(p)
        await self._screen(state, results)
        for p in proposed:
            result = results.get(p.id)
            if result is None:
                continue  # held for approval
            record.usage.cost_usd += result.cost_usd
            record.messages.append(_tool_message(p.id, result.content))
            entry = {
                "kind": "tool",
                "step": step,
                "call_id": p.id,
                "tool": p.name,
                "signature": p.signature,
                "valid": p.arguments.valid,
                "validation_errors": list(p.arguments.errors),
                "is_error": result.is_error,
                "approved": approved or None,
                "arguments": _json(p.arguments.value)[:_PREVIEW],
                "result": result.content[:_PREVIEW],
                "result_chars": len(result.content),
                "cost_usd": result.cost_usd,
                "screened": result.metadata.get("screened"),
            }
            record.steps.append(entry)
            started, ended = timings.get(p.id, (time.perf_counter(), time.perf_counter()))
            status = "error" if result.is_error else "ok"
            span_attrs = {k: v for k, v in entry.items() if k != "signature"}
            state.trace.spans.append(
                Span(
                    "agent.tool",
                    (started - state.trace.started) * 1000.0,
                    (ended - started) * 1000.0,
                    status,
                    span_attrs,
                )
            )
            yield {
                "type": "tool",
                "step": step,
                "name": p.name,
                "ok": not result.is_error,
                "chars": len(result.content),
            }

    def _refusal(self, state: RunState, p: _Proposed) -> str | None:
        """Why a call is answered with an error instead of run (None: it may run)."""
        if p.ready is None:
            known = ", ".join(state.box.tools) or "none"
            return f"Error: there is no tool named '{p.name}' (tools: {known})."
        if not p.arguments.valid:
            return f"Error: invalid arguments for '{p.name}': " + "; ".join(p.arguments.errors)
        limit = p.ready.tool.spec.max_calls
        if limit is not None and state.per_tool[p.name] > limit:
            return f"Error: the tool '{p.name}' may be called at most {limit} times per run."
        return None

    async def _screen(self, state: RunState, results: dict[str, ToolResult]) -> None:
        guard = state.guard
        if guard is None:
            return
        ids = [i for i, r in results.items() if not r.is_error and r.content]
        if not ids:
            return
        screened = await guard.screen([results[i].content for i in ids], state.trace)
        for i, score in screened.flagged:
            result = results[ids[i]]
            result.content = screened.texts[i]
            result.metadata["screened"] = {"action": guard.action, "score": round(score, 4)}
        state.trace.attrs.setdefault("agent_guard_ms", 0.0)
        state.trace.attrs["agent_guard_ms"] += round(screened.elapsed_ms, 3)

    # -- limits ---------------------------------------------------------------------------

    def _limit(self, state: RunState) -> StopReason | None:
        usage, limits = state.record.usage, state.limits
        if time.monotonic() >= state.deadline - _DEADLINE_SLACK_S:
            return "deadline"
        if usage.steps >= limits.max_steps:
            return "max_steps"
        if usage.prompt_tokens + usage.completion_tokens >= limits.max_tokens:
            return "max_tokens"
        if usage.cost_usd >= limits.max_cost_usd:
            return "max_cost"
        return None

    def stop(self, state: RunState, reason: StopReason) -> Progress:
        """End the run at ``reason`` with what it has (its answer says it stopped)."""
        record = state.record
        record.status, record.stop_reason = "stopped", reason
        why = _WHY.get(reason, reason).format(l=state.limits)
        last = _last_words(record.messages)
        note = f"[The agent stopped before a final answer: {why}.]"
        record.answer = f"{last}\n\n{note}" if last else note
        return {"type": "done", "stop_reason": reason}


def _count(state: RunState, decided: _Proposed) -> None:
    """Count a decided call as proposed: the state of a resumed run is rebuilt from its step
    log, where a held call was not yet (an approved one is logged as it runs, a refused one by
    its decision, and both are counted from there by a later resume)."""
    state.signatures[decided.signature] += 1
    state.per_tool[decided.name] += 1


async def drive(events: AsyncIterator[Progress]) -> None:
    """Run a loop to its stop, ignoring its progress."""
    async for _ in events:
        pass


def summary(record: RunRecord) -> dict[str, Any]:
    """What the response's ``groundgate.agent`` and the trace's ``attrs["agent"]`` say."""
    usage = record.usage
    out: dict[str, Any] = {
        "run_id": record.id,
        "status": record.status,
        "stop_reason": record.stop_reason,
        "steps": usage.steps,
        "tool_calls": usage.tool_calls,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": round(usage.cost_usd, 10),
            "elapsed_s": round(usage.elapsed_s, 3),
        },
    }
    if record.pending:
        out["pending"] = pending_view(record.pending)
    return out


def pending_view(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pending calls as a reviewer reads them: id, tool name, arguments (parsed when JSON)."""
    view = []
    for call in pending:
        function = call.get("function") or {}
        raw = function.get("arguments")
        try:
            arguments = orjson.loads(raw) if isinstance(raw, str) else raw
        except orjson.JSONDecodeError:
            arguments = raw
        view.append({"id": call.get("id"), "name": function.get("name"), "arguments": arguments})
    return view


def _name(call: dict[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or "")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _assistant(message: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    # Only what a chat request takes back: provider extras (refusal, annotations) stay out.
    return {"role": "assistant", "content": message.get("content"), "tool_calls": calls}


def _tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _last_words(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return content.strip()
    return ""


def _span(trace: Trace, name: str, started: float, status: str, attrs: dict[str, Any]) -> None:
    now = time.perf_counter()
    trace.spans.append(
        Span(name, (started - trace.started) * 1000.0, (now - started) * 1000.0, status, attrs)
    )
