"""An agent run as it is persisted: enough to resume it after an approval, also in another
process after a restart. The store keeps these (``store/runs.py``); ``/v1/runs`` and
``groundgate runs`` read and decide them.

Statuses::

    running -> completed | stopped | failed
    running -> pending_approval -> running (approved or rejected: the loop goes on)
                                -> expired  (nobody decided in time)

``stopped``: a limit ended the run (``stop_reason`` says which); the answer is what it had.
A rejected call does not end the run: the model is told the call was refused and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
# Why a run ended: "final_answer", or the limit that stopped it.
StopReason = Literal[
    "final_answer",
    "max_steps",
    "max_tool_calls",
    "max_tokens",
    "max_cost",
    "deadline",
    "loop_detected",
    "rejected",
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
