"""Agent: the app's answer made by the bounded tool loop (``agents/loop.py``) instead of
retrieve → prompt → generate; and ``agent_fallback``: the loop run only when a pipeline app's
own answer abstained or an output guard rejected it.

* ``agent`` (the generate-phase stage of a ``mode = "agent"`` app): runs a run for the request.
  A whole answer: the loop runs here, the answer is its final message. A stream: the answer
  is a stream that runs the loop as it is read, passing progress on as chunks without choices
  (``PROGRESS``: the API writes them as SSE comment lines), then the final message as chunks.
  A run paused for approval answers with a message that says so (``ctx.agent`` carries the
  run: the API answers 202 and ``groundgate.agent.status = "pending_approval"``).
* ``agent_fallback`` (first of a pipeline app's stages, so its transform sees the answer last,
  after every guard): the pipeline's answer is passed on unless it abstained or an output
  guard blocked it (or the schema stage gave up on it); then the loop answers instead, from
  the client's own messages. Input guards refusing a request do not fall back: a request
  refused for what it says gets no tools either. The loop's answer arrives after the output
  guards had their say on the pipeline's, so it goes through them itself (the ``guard_out``
  stage's own transform, built from the app's guards: redaction, deny patterns, groundedness
  as configured) before the client sees it; one they block is withheld like any blocked
  answer, never handed to the loop again.

A client may not send ``tools`` to an agent app (400): the app's tools are the gateway's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from groundgate.agents.loop import Progress, RunState, drive
from groundgate.agents.service import Agents
from groundgate.errors import InvalidRequest, SchemaValidationFailed
from groundgate.guards.output import ABSTAINS
from groundgate.pipeline.answer import AnswerRecord, OneChunk, answer_chunks, whole_chunk
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.services import Services, Target
from groundgate.pipeline.stage import Stage
from groundgate.pipeline.stages.guard_out import guard_out_stage
from groundgate.prompts.assemble import cited_numbers
from groundgate.providers.base import Chunk, Completion, Usage
from groundgate.reliability.held_stream import close_quietly

# The key of a progress chunk's ``extra`` (a chunk without choices: never part of the answer).
PROGRESS = "agent_progress"
_CLIENT_TOOL_FIELDS = ("tools", "functions")


def agent_stage(services: Services, target: Target) -> Stage | None:
    if target.app is None or services.agents is None:
        return None
    return Agent(services.agents)


def agent_fallback_stage(services: Services, target: Target) -> Stage | None:
    if target.app is None or not target.app.agent_fallback or services.agents is None:
        return None
    return AgentFallback(services.agents, guard_out_stage(services, target))


class Agent(Stage):
    name = "agent"
    span = "agent"

    def __init__(self, agents: Agents) -> None:
        self.agents = agents

    async def enter(self, ctx: RequestContext) -> None:
        sent = [f for f in _CLIENT_TOOL_FIELDS if f in ctx.call.params]
        if sent:
            raise InvalidRequest(
                f"The app '{ctx.app_name}' is an agent that calls its own tools; a request to "
                f"it may not send '{sent[0]}'. Call a plain model to run tools yourself.",
                param=sent[0],
                code="tools_not_accepted",
            )
        state = start_run(self.agents, ctx, ctx.call.messages)
        events = self.agents.start(state)
        if ctx.stream:
            ctx.answer = _streamed(ctx, state, events)
            return
        await drive(events)
        settle(ctx, state)
        completion = final_completion(state)
        ctx.completion = completion
        ctx.answer = OneChunk(whole_chunk(completion))


class AgentFallback(Stage):
    name = "agent_fallback"

    def __init__(self, agents: Agents, guard_out: Stage | None) -> None:
        self.agents = agents
        # The output guards the loop's answer passes (None: the app's guards leave them off).
        self.guard_out = guard_out

    async def enter(self, ctx: RequestContext) -> None:
        # The client's conversation, before the prompt stage grounds it: what the agent
        # starts from if it is needed.
        ctx.agent_messages = list(ctx.call.messages)

    async def transform(
        self, ctx: RequestContext, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        try:
            held = [chunk async for chunk in chunks]
            reason = _fallback_reason(ctx, held)
        except SchemaValidationFailed:
            held, reason = [], "schema"
        if reason is None:
            for chunk in held:
                yield chunk
            return
        ctx.trace.attrs["agent_fallback"] = reason
        messages = ctx.agent_messages if ctx.agent_messages is not None else ctx.call.messages
        state = start_run(self.agents, ctx, messages)
        answer: AsyncIterator[Chunk] = _streamed(
            ctx, state, self.agents.start(state), progress=ctx.stream, fallback=True
        )
        guard = self.guard_out
        if guard is not None and guard.sees_answer(ctx):
            answer = guard.transform(ctx, answer)
        try:
            async for chunk in answer:
                yield chunk
        finally:
            await close_quietly(answer)  # the run ends with the request, not when collected


def start_run(agents: Agents, ctx: RequestContext, messages: list[dict[str, Any]]) -> RunState:
    app, entry = ctx.app, ctx.entry
    if app is None or entry is None:
        raise RuntimeError("the agent stage needs an app and a resolved model (route first)")
    principal = ctx.principal
    # The key's tool permissions (None: every tool of the app).
    allowed = principal.allowed_tools if principal is not None else None  # key within tenant
    params = {k: v for k, v in ctx.call.params.items() if k not in _CLIENT_TOOL_FIELDS}
    state = agents.begin(
        app_name=ctx.app_name or ctx.model,
        app=app,
        entry=entry,
        messages=messages,
        params=params,
        tenant=ctx.tenant,
        key_id=principal.key_id if principal is not None else None,
        allowed=allowed,
        trace=ctx.trace,
        deadline=ctx.deadline,
    )
    ctx.agent = state
    return state


def settle(ctx: RequestContext, state: RunState, *, fallback: bool = False) -> None:
    """What the request used and cost: the whole run's usage so far. A fallback run adds
    each step to what the pipeline's own answer used (the generate stage's exit prices it)."""
    ctx.source = "agent"
    ctx.citations = []
    if fallback:
        for step in state.record.steps:
            if step.get("kind") == "step":
                usage_of = Usage(step["prompt_tokens"], step["completion_tokens"])
                ctx.extra_usage.append((step["deployment"], usage_of))
        return
    usage = state.record.usage
    ctx.usage = Usage(usage.prompt_tokens, usage.completion_tokens)
    ctx.cost_usd = usage.cost_usd
    ctx.deployment = state.deployment


def final_completion(state: RunState) -> Completion:
    record = state.record
    if record.status == "pending_approval":
        names = ", ".join(str((c.get("function") or {}).get("name")) for c in record.pending)
        text = (
            f"This request is waiting for a person to approve a call to {names} "
            f"(run {record.id}). It goes on once it is approved or rejected."
        )
    else:
        text = record.answer or ""
    usage = record.usage
    return Completion(
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        usage=Usage(usage.prompt_tokens, usage.completion_tokens),
    )


async def _streamed(
    ctx: RequestContext,
    state: RunState,
    events: AsyncGenerator[Progress, None],
    *,
    progress: bool = True,
    fallback: bool = False,
) -> AsyncGenerator[Chunk, None]:
    """The run as a stream: progress chunks while it runs, then the final message."""
    # Closed explicitly: a client gone mid-stream closes this generator, and the run must
    # end (and be saved) then, not whenever the abandoned generator is collected.
    async with aclosing(events) as running:
        async for event in running:
            if progress:
                yield Chunk([], extra={PROGRESS: event})
    settle(ctx, state, fallback=fallback)
    for chunk in answer_chunks(final_completion(state), ctx.stream):
        yield chunk


def _fallback_reason(ctx: RequestContext, held: list[Chunk]) -> str | None:
    """Why the pipeline's answer is not good enough (None: it is)."""
    report = ctx.guards
    if report is not None and any(d.action == "block" for d in report.decisions):
        return "guard"
    record = AnswerRecord(whole=not ctx.stream)
    for chunk in held:
        record.add(chunk)
    flagged = record.extra.get("abstained")
    if isinstance(flagged, bool):
        return "abstained" if flagged else None
    text = record.text
    return "abstained" if not cited_numbers(text) and ABSTAINS.search(text) else None
