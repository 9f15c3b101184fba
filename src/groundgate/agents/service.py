"""Agent runs as the gateway serves them: started by the agent stage, stored when they start
(``running``) and saved when they stop or pause, read and decided through ``/v1/runs`` and
``groundgate runs``.

Everything a paused run needs to go on is in its stored record (messages, the request's
parameters, the model, the tools its key could use, usage so far), so any process on the same
store can resume it, after a restart too. A decision is one conditional update
(``save_run(expected="pending_approval")``): of two reviewers deciding at once, one wins and
the other gets 409. A run that waited longer than its app's ``approval_timeout_s`` is
``expired`` (set when it is next read or decided).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from groundgate.agents.loop import AgentLoop, Progress, RunState, summary
from groundgate.agents.result_guard import ResultGuard
from groundgate.agents.toolbox import ToolBoxes
from groundgate.agents.webhook import ApprovalWebhook
from groundgate.config import AppConfig, Settings
from groundgate.config_agent import AgentLimits
from groundgate.config_guards import effective_guards
from groundgate.errors import Conflict, InvalidRequest, NotFound
from groundgate.guards.embedder import guard_embedder
from groundgate.guards.injection import shipped_classifier
from groundgate.observe.cost import PriceTable
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.observe.trace_writer import TraceWriter
from groundgate.providers.catalog import Catalog, CatalogEntry
from groundgate.reliability.fallback import FallbackChain
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.shielded import shielded, start_shielded
from groundgate.store.runs import ApprovalDecision, RunRecord, RunStatus, RunStore
from groundgate.tools.base import ToolContext, ToolSet

# The key of a run's ``params`` that holds what the gateway needs to resume it (never sent
# upstream): the model's catalog name and the tools the starting key was allowed.
GATEWAY_PARAMS = "groundgate"
_DEFAULT_LIMITS = AgentLimits()
_SWEEP_PAGE = 200  # pending runs read per page when expiring the overdue ones


def app_limits(apps: Mapping[str, AppConfig], app: str) -> AgentLimits:
    """The limits of ``app``'s runs (an app no longer configured: the defaults)."""
    config = apps.get(app)
    return config.agent if config is not None else _DEFAULT_LIMITS


def expired(run: RunRecord, now: float) -> RunRecord:
    """``run``, waiting for approval past its timeout, as saved once it has expired."""
    return dataclasses.replace(run, status="expired", updated_at=now)


class RunDecided(Conflict):
    """The run is not waiting for a decision (decided already, expired, or never paused)."""

    code = "run_not_pending"


class Agents:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        chain: FallbackChain,
        prices: PriceTable,
        runs: RunStore,
        traces: TraceWriter,
        embeddings: Mapping[str, EmbeddingService],
        tools: ToolSet | None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.runs = runs
        self.traces = traces
        self.loop = AgentLoop(chain, prices)
        self.boxes = ToolBoxes(tools)
        self.webhook = ApprovalWebhook(settings.agent)
        # The tool-result guard of each app that runs the agent (None: its guards leave it off).
        self.guards: dict[str, ResultGuard | None] = {
            name: _result_guard(settings, name, app, embeddings)
            for name, app in settings.apps.items()
            if app.uses_agent
        }

    async def aclose(self) -> None:
        await self.webhook.aclose()

    def limits(self, app: str) -> AgentLimits:
        return app_limits(self.settings.apps, app)

    # -- a new run ------------------------------------------------------------------------

    def begin(
        self,
        *,
        app_name: str,
        app: AppConfig,
        entry: CatalogEntry,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        tenant: str,
        key_id: str | None,
        allowed: frozenset[str] | None,
        trace: Trace,
        deadline: float,
    ) -> RunState:
        """A run of ``app`` for one request (``deadline``: the request's, time.monotonic())."""
        now = time.time()
        stored = dict(params)
        stored[GATEWAY_PARAMS] = {
            "model": entry.name,
            "tools": sorted(allowed) if allowed is not None else None,
        }
        record = RunRecord(
            id="run_" + os.urandom(12).hex(),
            tenant=tenant,
            app=app_name,
            key_id=key_id,
            trace_id=trace.id,
            created_at=now,
            updated_at=now,
            status="running",
            messages=[dict(m) for m in messages],
            params=stored,
        )
        return self._state(record, app.agent, entry, allowed, trace, deadline)

    async def start(self, state: RunState) -> AsyncGenerator[Progress, None]:
        """Store a new run as ``running`` (listed while it runs), run it to its stop or pause,
        then save it (and announce a pause). A run whose request ends under it (a client gone
        mid-stream) is saved ``stopped`` (``cancelled``): both writes finish out of the
        cancellation's reach, the second after the first."""
        record = state.record
        added = start_shielded(self.runs.add_run(record))
        try:
            await asyncio.shield(added)
            async with aclosing(self.loop.run(state)) as events:
                async for event in events:
                    yield event
        finally:
            if record.status == "running":  # cancelled before the loop took its first step
                self.loop.stop(state, "cancelled")
            await shielded(self._saved(added, record))

    async def _saved(self, added: asyncio.Task[None], record: RunRecord) -> None:
        await added  # a run that could not be stored has nothing to update (its error is raised)
        record.updated_at = time.time()
        await self.runs.save_run(record, expected="running")
        self._announce(record)

    # -- reading and deciding ---------------------------------------------------------------

    async def get(self, tenant: str, run_id: str) -> RunRecord | None:
        run = await self.runs.get_run(tenant, run_id)
        return await self._expire(run) if run is not None else None

    async def list(
        self,
        tenant: str,
        *,
        status: RunStatus | None = None,
        app: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """The tenant's runs, newest first. Listing by ``pending_approval`` or ``expired``
        first expires the runs that waited too long (their stored status is still pending
        until then), so each is listed under the status it now has."""
        if status in ("pending_approval", "expired"):
            await self._expire_overdue(tenant, app)
        runs = await self.runs.list_runs(tenant, status=status, app=app, before=before, limit=limit)
        current = [await self._expire(run) for run in runs]
        return [run for run in current if status is None or run.status == status]

    async def decide(self, tenant: str, run_id: str, decision: ApprovalDecision) -> RunRecord:
        """Approve (run the pending calls, edited or not) or reject (tell the model) a paused
        run, and go on to its next stop, here and now. Raises NotFound, RunDecided (409), or
        InvalidRequest for edited arguments that do not fit."""
        run = await self.get(tenant, run_id)
        if run is None:
            raise NotFound(f"No run with id '{run_id[:64]}'.", param="run_id")
        if run.status != "pending_approval":
            raise RunDecided(f"The run is {run.status}, not waiting for approval.")
        gateway = run.params.get(GATEWAY_PARAMS) or {}
        app = self.settings.apps.get(run.app)
        if app is None:
            raise RunDecided(f"The run's app '{run.app}' is no longer configured.")
        allowed = gateway.get("tools")
        allowed_set = frozenset(allowed) if isinstance(allowed, list) else None
        entry = self.catalog.get(str(gateway.get("model") or app.model), "chat")
        trace = Trace(
            id=new_trace_id(),
            tenant=tenant,
            endpoint="runs.decide",
            model=run.app,
            key_id=decision.decided_by,
        )
        trace.attrs.update(app=run.app, run_id=run.id, run_trace_id=run.trace_id)
        limits = app.agent
        room = min(limits.deadline_s - run.usage.elapsed_s, self.settings.server.request_timeout_s)
        state = self._state(run, limits, entry, allowed_set, trace, time.monotonic() + room)
        if decision.approve and decision.arguments:
            _check_edits(state, decision.arguments)
        run.status = "running"
        run.decided_by, run.note = decision.decided_by, decision.note
        run.updated_at = time.time()
        if not await self.runs.save_run(run, expected="pending_approval"):
            raise RunDecided("The run was decided by someone else first.")
        before = dataclasses.replace(run.usage)
        try:
            async for _ in self.loop.decided(state, decision):
                pass
        finally:
            run.updated_at = time.time()
            await shielded(self.runs.save_run(run, expected="running"))
            self._announce(run)
            self._record(trace, state, before)
        return run

    # -- internals --------------------------------------------------------------------------

    def _state(
        self,
        record: RunRecord,
        limits: AgentLimits,
        entry: CatalogEntry,
        allowed: frozenset[str] | None,
        trace: Trace,
        deadline: float,
    ) -> RunState:
        box = self.boxes.for_app(record.app, allowed)
        params = {k: v for k, v in record.params.items() if k != GATEWAY_PARAMS}
        if box.openai_tools is not None:
            params["tools"] = box.openai_tools
        own = time.monotonic() + max(limits.deadline_s - record.usage.elapsed_s, 0.0)
        context = ToolContext(record.tenant, record.app, record.key_id, trace.id, record.id)
        return RunState(
            record=record,
            box=box,
            entry=entry,
            limits=limits,
            trace=trace,
            tool_ctx=context,
            deadline=min(own, deadline),
            params=params,
            guard=self.guards.get(record.app),
        )

    async def _expire(self, run: RunRecord) -> RunRecord:
        if run.status != "pending_approval":
            return run
        if time.time() - run.updated_at <= self.limits(run.app).approval_timeout_s:
            return run
        overdue = expired(run, time.time())
        if await self.runs.save_run(overdue, expected="pending_approval"):
            return overdue
        again = await self.runs.get_run(run.tenant, run.id)  # decided meanwhile
        return again if again is not None else run

    async def _expire_overdue(self, tenant: str, app: str | None) -> None:
        """Expire every run of the tenant that waited past its app's approval timeout (runs
        waiting for a person are few: one pass over them)."""
        before = None
        while True:
            page = await self.runs.list_runs(
                tenant, status="pending_approval", app=app, before=before, limit=_SWEEP_PAGE
            )
            for run in page:
                await self._expire(run)
            if len(page) < _SWEEP_PAGE:
                return
            before = (page[-1].created_at, page[-1].id)

    def _announce(self, run: RunRecord) -> None:
        if run.status == "pending_approval":
            self.webhook.notify(run)

    def _record(self, trace: Trace, state: RunState, before: Any) -> None:
        """The decision's own trace: the steps it ran, what they used and cost."""
        usage = state.record.usage
        trace.deployment = state.deployment
        trace.prompt_tokens = usage.prompt_tokens - before.prompt_tokens
        trace.completion_tokens = usage.completion_tokens - before.completion_tokens
        trace.cost_usd = usage.cost_usd - before.cost_usd
        trace.latency_ms = trace.elapsed_ms()
        trace.source = "agent"
        if state.record.status == "failed":
            trace.status = "error"
        trace.attrs["agent"] = summary(state.record)
        self.traces.submit(trace)


def _check_edits(state: RunState, edits: dict[str, dict[str, Any]]) -> None:
    pending = {str(c.get("id")): c for c in state.record.pending}
    problems = []
    for call_id, arguments in edits.items():
        call = pending.get(call_id)
        if call is None:
            problems.append(f"'{call_id[:64]}' is not a pending call of this run")
            continue
        name = str((call.get("function") or {}).get("name") or "")
        checked = state.box.arguments(state.box.get(name), arguments)
        if not checked.valid:
            problems.append(f"'{call_id[:64]}' ({name}): " + "; ".join(checked.errors))
    if problems:
        raise InvalidRequest("Edited arguments refused: " + "; ".join(problems), param="arguments")


def _result_guard(
    settings: Settings, name: str, app: AppConfig, embeddings: Mapping[str, EmbeddingService]
) -> ResultGuard | None:
    config = effective_guards(settings.guards, app.guards).passages
    if config.action == "off":
        return None
    classifier = shipped_classifier()
    embedder = guard_embedder(
        embeddings, classifier.embedder, settings.cache.embedder, f"apps.{name}.guards.passages"
    )
    return ResultGuard(config.action, embedder, classifier, config.threshold)
