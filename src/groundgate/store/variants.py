"""The shape of one A/B-split trace as ``Store.variant_traces`` returns it, shared by every
store backend: what ``groundgate report ab`` compares variants on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class VariantTrace:
    trace_id: str  # feedback (issue 16) joins on it
    created_at: float
    variant: str
    status: str  # ok | error | cancelled | held
    latency_ms: float
    cost_usd: float
    guard_actions: tuple[str, ...]  # each guard decision's action (block, flag, review, ...)


def variant_trace(r: Any) -> VariantTrace:
    """(id, created_at, variant, status, latency_ms, cost_usd, guard decisions) as a row; the
    decisions as JSON text (SQLite) or already parsed (PostgreSQL's jsonb)."""
    decisions = r[6]
    if isinstance(decisions, (str, bytes)):
        decisions = orjson.loads(decisions)
    actions = tuple(
        str(d["action"]) for d in decisions or () if isinstance(d, dict) and "action" in d
    )
    return VariantTrace(
        trace_id=r[0],
        created_at=float(r[1]),
        variant=str(r[2]),
        status=r[3],
        latency_ms=float(r[4]),
        cost_usd=float(r[5]),
        guard_actions=actions,
    )
