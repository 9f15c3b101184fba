"""A run as ``/v1/runs`` and ``groundgate runs`` show it."""

from __future__ import annotations

from typing import Any

from groundgate.agents.loop import pending_view
from groundgate.store.runs import RunRecord


def run_view(run: RunRecord, *, detail: bool = False) -> dict[str, Any]:
    """The run's state, pending calls, usage and answer; ``detail`` adds the conversation and
    the step log (one run read by id)."""
    usage = run.usage
    view: dict[str, Any] = {
        "object": "agent.run",
        "id": run.id,
        "status": run.status,
        "stop_reason": run.stop_reason,
        "app": run.app,
        "tenant": run.tenant,
        "key_id": run.key_id,
        "trace_id": run.trace_id,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "pending": pending_view(run.pending),
        "answer": run.answer,
        "usage": {
            "steps": usage.steps,
            "tool_calls": usage.tool_calls,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": round(usage.cost_usd, 10),
            "elapsed_s": round(usage.elapsed_s, 3),
        },
        "decided_by": run.decided_by,
        "note": run.note,
    }
    if detail:
        view["messages"] = run.messages
        view["steps"] = [{k: v for k, v in s.items() if k != "signature"} for s in run.steps]
    return view
