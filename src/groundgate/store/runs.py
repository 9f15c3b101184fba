"""Agent runs as they are persisted: enough to resume one after an approval, also in another
process after a restart. The loop (``agents/``) writes them; ``/v1/runs`` and
``groundgate runs`` read and decide them. A run belongs to one tenant and every query names it.

Statuses::

    running -> completed | stopped | failed
    running -> pending_approval -> running (approved or rejected: the loop goes on)
                                -> expired  (nobody decided in time)

``stopped``: a limit ended the run, or the request running it ended first (``stop_reason``
says which); the answer is what it had.
A rejected call does not end the run: the model is told the call was refused and goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

RunStatus = Literal["running", "pending_approval", "completed", "stopped", "failed", "expired"]
RUN_STATUSES: tuple[RunStatus, ...] = (
    "running",
    "pending_approval",
    "completed",
    "stopped",
    "failed",
    "expired",
)
# Why a run ended: "final_answer", the limit that stopped it, or "cancelled" (the request
# that ran it ended first: its client went away).
StopReason = Literal[
    "final_answer",
    "max_steps",
    "max_tool_calls",
    "max_tokens",
    "max_cost",
    "deadline",
    "loop_detected",
    "rejected",
    "cancelled",
    "error",
]


@dataclass(slots=True)
class RunUsage:
    steps: int = 0  # model calls made
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0  # wall-clock time spent running (not waiting for approval)


@dataclass(slots=True)
class RunRecord:
    id: str
    tenant: str
    app: str
    key_id: str | None
    trace_id: str
    created_at: float
    updated_at: float
    status: RunStatus
    # The conversation as the loop sends it upstream: the request's messages, then each
    # assistant turn with its tool_calls and each tool result.
    messages: list[dict[str, Any]]
    # The request's parameters the loop reuses on every step (model, temperature, ...).
    params: dict[str, Any]
    # Calls waiting for a decision: OpenAI tool_call objects (id, function name, arguments).
    pending: list[dict[str, Any]] = field(default_factory=list)
    # One entry per step and per tool call (what the trace records), in order.
    steps: list[dict[str, Any]] = field(default_factory=list)
    usage: RunUsage = field(default_factory=RunUsage)
    stop_reason: StopReason | None = None
    answer: str | None = None
    decided_by: str | None = None  # who decided the last approval
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    approve: bool
    decided_by: str | None  # the deciding key's id, or "admin" / "cli"
    # Replacement arguments per pending tool_call id (a reviewer's edit); None: as proposed.
    arguments: dict[str, dict[str, Any]] | None = None
    note: str | None = None


class RunStore(Protocol):
    async def add_run(self, run: RunRecord) -> None: ...

    async def get_run(self, tenant: str, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self,
        tenant: str,
        *,
        status: RunStatus | None = None,
        app: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Newest first (``created_at``, ``id`` descending); ``before`` pages as in reviews."""
        ...

    async def save_run(self, run: RunRecord, *, expected: RunStatus) -> bool:
        """Write the run if its stored status is still ``expected`` (one conditional update:
        two reviewers deciding at once cannot both resume it). False otherwise."""
        ...

    async def idle_runs(
        self,
        status: RunStatus,
        *,
        updated_before: float,
        after: RunCursor | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Every tenant's runs in ``status`` last written before ``updated_before``, least
        recently written first (``updated_at``, ``tenant``, ``id``), after ``after``: the runs a
        stopped gateway may have left behind (``agents/reaper.py``)."""
        ...


@dataclass(frozen=True, slots=True, order=True)
class RunCursor:
    """Where a page of :meth:`RunStore.idle_runs` ended."""

    updated_at: float
    tenant: str
    id: str

    @staticmethod
    def after(run: RunRecord) -> RunCursor:
        return RunCursor(run.updated_at, run.tenant, run.id)


# The columns a backend stores; everything else of the record is the JSON ``data`` column.
RUN_COLUMNS = "tenant, id, app, key_id, trace_id, created_at, updated_at, status, data"
RUN_COLUMN_COUNT = 9
_IN_COLUMNS = ("tenant", "id", "app", "key_id", "trace_id", "created_at", "updated_at", "status")


def run_row(run: RunRecord, json_value: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The run as a row in ``RUN_COLUMNS`` order (``json_value`` makes the JSON column)."""
    data = asdict(run)
    for name in _IN_COLUMNS:
        data.pop(name)
    return (
        run.tenant,
        run.id,
        run.app,
        run.key_id,
        run.trace_id,
        run.created_at,
        run.updated_at,
        run.status,
        json_value(data),
    )


def run_from_row(row: Sequence[Any], json_value: Callable[[Any], Any]) -> RunRecord:
    data = json_value(row[8])
    usage = RunUsage(**data.pop("usage"))
    return RunRecord(
        tenant=row[0],
        id=row[1],
        app=row[2],
        key_id=row[3],
        trace_id=row[4],
        created_at=row[5],
        updated_at=row[6],
        status=row[7],
        usage=usage,
        **data,
    )


def idle_runs_query(
    placeholder: str, *, status: str, updated_before: float, after: RunCursor | None, limit: int
) -> tuple[str, list[Any]]:
    """:meth:`RunStore.idle_runs` as one statement (an index scan of ``agent_runs_in_flight``)."""
    mark = placeholder
    where = [f"status = {mark}", f"updated_at < {mark}"]
    params: list[Any] = [status, updated_before]
    if after is not None:
        where.append(f"(updated_at, tenant, id) > ({mark}, {mark}, {mark})")
        params += [after.updated_at, after.tenant, after.id]
    query = (
        f"SELECT {RUN_COLUMNS} FROM agent_runs WHERE {' AND '.join(where)}"
        f" ORDER BY updated_at, tenant, id LIMIT {mark}"
    )
    return query, [*params, limit]
