"""Sums over the cost ledger (``store/ledger.py``): totals, the spend per day of each tenant,
key, app, model and tier, and one breakdown per dimension. ``GET /v1/usage`` and
``groundgate report cost`` show the same numbers from the same rows.

A cache hit costs nothing and saves what its answer cost when it was generated
(``cache_saved_usd``); a routed answer saves the estimated difference to the top tier
(``route_saved_usd``). Amounts are rounded to 10 decimals, below any price's precision, so the
same traces give the same JSON whichever order a database summed them in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from groundgate.store.ledger import LedgerRow

# The dimensions of the breakdown, as (its key in JSON, what it reads from a row).
DIMENSIONS: dict[str, Callable[[LedgerRow], str | None]] = {
    "day": lambda r: r.day,
    "tenant": lambda r: r.tenant,
    "key_id": lambda r: r.key_id,
    "app": lambda r: r.app,
    "model": lambda r: r.model,
    "tier": lambda r: r.tier,
}
USD_DECIMALS = 10


def usd(value: float) -> float:
    return round(value, USD_DECIMALS) + 0.0  # + 0.0: no "-0.0" in the JSON


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache_saved_usd: float = 0.0
    route_saved_usd: float = 0.0

    def add(self, row: LedgerRow) -> None:
        self.requests += row.requests
        self.errors += row.requests if row.status == "error" else 0
        self.cache_hits += row.requests if row.cache_hit else 0
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.cost_usd += row.cost_usd
        self.cache_saved_usd += row.cache_saved_usd
        self.route_saved_usd += row.route_saved_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": usd(self.cost_usd),
            "cache_saved_usd": usd(self.cache_saved_usd),
            "route_saved_usd": usd(self.route_saved_usd),
        }


def totals(rows: Iterable[LedgerRow]) -> Totals:
    total = Totals()
    for row in rows:
        total.add(row)
    return total


def grouped(
    rows: Iterable[LedgerRow], dimensions: Iterable[str]
) -> list[tuple[tuple[str | None, ...], Totals]]:
    """Totals per distinct value of ``dimensions`` (names in :data:`DIMENSIONS`), in the
    order of those values (None first)."""
    readers = [DIMENSIONS[name] for name in dimensions]
    groups: dict[tuple[str | None, ...], Totals] = {}
    for row in rows:
        key = tuple(read(row) for read in readers)
        groups.setdefault(key, Totals()).add(row)
    return sorted(groups.items(), key=lambda item: tuple((v is not None, v or "") for v in item[0]))


def daily_ledger(rows: Iterable[LedgerRow]) -> list[dict[str, Any]]:
    """The ledger proper: spend per day, tenant, key, app, model and tier."""
    names = ("day", "tenant", "key_id", "app", "model", "tier")
    return [
        {**dict(zip(names, key, strict=True)), **total.as_dict()}
        for key, total in grouped(rows, names)
    ]


def breakdown(rows: list[LedgerRow], dimensions: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """``{"by_<dimension>": [{<dimension>: value, **totals}, ...]}`` for each dimension."""
    return {
        f"by_{name}": [{name: key[0], **total.as_dict()} for key, total in grouped(rows, [name])]
        for name in dimensions
    }
