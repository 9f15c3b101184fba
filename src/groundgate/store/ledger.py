"""The cost ledger: spend per UTC day, tenant, key, app, model, deployment and tier, grouped
from the stored traces by the store (``Store.ledger``), the same for every backend.

One :class:`LedgerRow` sums the traces that share all of its keys, its request ``status`` and
whether the cache answered them: enough for ``GET /v1/usage``'s breakdown and for
``groundgate report cost`` (observe/cost_report.py) to tell cache hits, errors and generated
answers apart without reading a trace twice. The keys come from the trace's columns and from
its ``attrs``: ``app`` (the app called, if any), ``route.tier`` (the tier that generated, for a
routed target), ``cache.status`` (``exact`` or ``semantic`` on a hit) with ``cache.saved_usd``
(what the cached answer cost when it was generated) and ``route.saved_usd`` (the estimated
saving against the top tier).

``tenant`` None reads every tenant: only the operator's CLI, which holds the store itself, asks
for that; the HTTP API always names the caller's tenant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# The cache statuses that mean the cache answered the request (cache/response.py).
CACHE_HIT_STATUSES = ("exact", "semantic")


@dataclass(frozen=True, slots=True)
class LedgerRow:
    day: str  # UTC, YYYY-MM-DD
    tenant: str
    key_id: str | None
    app: str | None
    model: str  # the name the client called
    deployment: str | None  # provider:upstream-model that answered (a hit: the cached one's)
    tier: str | None  # the tier that generated (None: not a routed target)
    status: str  # ok | error | cancelled | held
    cache_hit: bool
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cache_saved_usd: float
    route_saved_usd: float


class LedgerStore(Protocol):
    async def rows(
        self, tenant: str | None, since: float, until: float, key_id: str | None = None
    ) -> list[LedgerRow]:
        """The ledger of [since, until), ordered by its keys (see :func:`sort_rows`)."""
        ...

    async def cost_percentiles(
        self, tenant: str | None, since: float, until: float, percentiles: Sequence[float]
    ) -> dict[float, float]:
        """Each percentile (0 < p <= 1) of the cost of one request in [since, until), by
        nearest rank (:func:`nearest_rank`); empty when there is no request."""
        ...


def ledger_row(r: Any) -> LedgerRow:
    """(day, tenant, key_id, app, model, deployment, tier, status, cache_hit, requests,
    prompt, completion, cost, cache saved, route saved) as one row."""
    return LedgerRow(
        day=str(r[0]),
        tenant=r[1],
        key_id=r[2],
        app=None if r[3] is None else str(r[3]),
        model=r[4],
        deployment=r[5],
        tier=None if r[6] is None else str(r[6]),
        status=r[7],
        cache_hit=bool(r[8]),
        requests=int(r[9]),
        prompt_tokens=int(r[10] or 0),
        completion_tokens=int(r[11] or 0),
        cost_usd=float(r[12] or 0.0),
        cache_saved_usd=float(r[13] or 0.0),
        route_saved_usd=float(r[14] or 0.0),
    )


def sort_rows(rows: list[LedgerRow]) -> list[LedgerRow]:
    """One order for every backend (the databases sort NULLs and text differently)."""

    def key(row: LedgerRow) -> tuple[Any, ...]:
        return (
            row.day,
            row.tenant,
            row.key_id or "",
            row.app or "",
            row.model,
            row.deployment or "",
            row.tier or "",
            row.status,
            row.cache_hit,
        )

    return sorted(rows, key=key)


def nearest_rank(count: int, percentile: float) -> int:
    """The 1-based rank of ``percentile`` among ``count`` sorted values (nearest rank: the
    smallest value with at least that share of the values at or below it)."""
    if not 0 < percentile <= 1:
        raise ValueError(f"a percentile is in (0, 1]: {percentile}")
    return min(count, max(1, math.ceil(round(percentile * count, 9))))
