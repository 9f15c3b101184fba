"""``Store.ledger``: spend per UTC day, tenant, key, app, model, deployment, tier, status and
cache outcome, and the percentiles of the cost of one request, the same for every backend (the
``store`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime

from groundgate.observe.trace import Trace
from groundgate.store.base import Store
from groundgate.store.ledger import LedgerRow, nearest_rank
from tests.store.test_trace_conformance import make_trace

DAY1 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
DAY2 = DAY1 + 86400


def ledger_trace(
    trace_id: str,
    at: float,
    cost: float,
    *,
    tenant: str = "default",
    key_id: str | None = "k1",
    tier: str | None = None,
    app: str | None = None,
    cache: dict[str, object] | None = None,
    route_saved: float | None = None,
    **fields: object,
) -> Trace:
    attrs: dict[str, object] = {}
    if app is not None:
        attrs["app"] = app
    if tier is not None:
        attrs["route"] = {"tier": tier, "model": "m", "router": "rules"}
        if route_saved is not None:
            attrs["route"] = {**attrs["route"], "saved_usd": route_saved}  # type: ignore[dict-item]
    if cache is not None:
        attrs["cache"] = cache
    return make_trace(
        trace_id,
        tenant,
        created_at=at,
        key_id=key_id,
        cost_usd=cost,
        deployment="p:m",
        attrs=attrs,
        **fields,
    )


def row(**fields: object) -> LedgerRow:
    base: dict[str, object] = dict(
        day="2026-03-01",
        tenant="default",
        key_id="k1",
        app=None,
        model="m",
        deployment="p:m",
        tier=None,
        status="ok",
        cache_hit=False,
        requests=1,
        prompt_tokens=3,
        completion_tokens=4,
        cost_usd=0.5,
        cache_saved_usd=0.0,
        route_saved_usd=0.0,
    )
    return LedgerRow(**{**base, **fields})  # type: ignore[arg-type]


async def test_the_ledger_groups_a_window_by_day_key_app_model_tier_and_outcome(
    store: Store,
) -> None:
    hit = {"status": "exact", "similarity": 1.0, "cached_trace_id": "a", "saved_usd": 0.75}
    traces = [
        ledger_trace("a", DAY1 + 10, 0.5, app="bot", tier="cheap", route_saved=0.25),
        ledger_trace("b", DAY1 + 20, 0.25, app="bot", tier="cheap", route_saved=0.5),
        ledger_trace("c", DAY1 + 30, 2.0, app="bot", tier="strong", route_saved=0.0),
        # A cache hit: nothing spent, what the cached answer cost saved.
        ledger_trace(
            "d",
            DAY1 + 40,
            0.0,
            app="bot",
            tier="cheap",
            cache=hit,
            prompt_tokens=0,
            completion_tokens=0,
        ),
        # A miss that stored its answer is no hit.
        ledger_trace("e", DAY1 + 50, 0.5, cache={"status": "miss", "stored": True}),
        ledger_trace("f", DAY1 + 60, 0.0, status="error", key_id="k2"),
        ledger_trace("g", DAY2 - 0.5, 0.5),  # the last second of day 1 (UTC)
        ledger_trace("h", DAY2 + 1, 1.0),  # the next day
        ledger_trace("x", DAY1 + 70, 8.0, tenant="other"),  # another tenant
        ledger_trace("y", DAY1 - 1, 8.0),  # before the window
        ledger_trace("z", DAY2 + 86400, 8.0),  # at its end: excluded
    ]
    await store.write_traces(traces)
    got = await store.ledger.rows("default", DAY1, DAY2 + 86400)
    assert got == [
        row(requests=2, prompt_tokens=6, completion_tokens=8, cost_usd=1.0),
        row(app="bot", tier="cheap", requests=2, prompt_tokens=6, completion_tokens=8,
            cost_usd=0.75, route_saved_usd=0.75),
        row(app="bot", tier="cheap", cache_hit=True, prompt_tokens=0, completion_tokens=0,
            cost_usd=0.0, cache_saved_usd=0.75),
        row(app="bot", tier="strong", cost_usd=2.0),
        row(key_id="k2", status="error", cost_usd=0.0),
        row(day="2026-03-02", cost_usd=1.0),
    ]  # fmt: skip
    # One key's rows only; every tenant at once (the operator's view).
    assert {r.key_id for r in await store.ledger.rows("default", DAY1, DAY2, "k2")} == {"k2"}
    everyone = await store.ledger.rows(None, DAY1, DAY2)
    assert {r.tenant for r in everyone} == {"default", "other"}
    assert sum(r.requests for r in everyone) == 8
    assert await store.ledger.rows("default' OR '1'='1", 0.0, 1e12) == []


async def test_cost_percentiles_by_nearest_rank(store: Store) -> None:
    costs = [0.0, 0.0, 0.25, 0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    traces = [ledger_trace(f"t{i}", DAY1 + i, cost) for i, cost in enumerate(costs)]
    traces.append(ledger_trace("o", DAY1, 100.0, tenant="other"))
    await store.write_traces(traces)
    got = await store.ledger.cost_percentiles("default", DAY1, DAY2, [0.5, 0.9, 0.95, 1.0])
    assert got == {0.5: 0.5, 0.9: 8.0, 0.95: 16.0, 1.0: 16.0}
    assert (await store.ledger.cost_percentiles(None, DAY1, DAY2, [1.0])) == {1.0: 100.0}
    assert await store.ledger.cost_percentiles("default", DAY2, DAY2 + 1, [0.5]) == {}


def test_nearest_rank() -> None:
    assert [nearest_rank(10, p) for p in (0.05, 0.1, 0.5, 0.51, 0.95, 1.0)] == [1, 1, 5, 6, 10, 10]
    assert nearest_rank(1, 0.5) == 1
    # 0.7 * 10 is 7.000000000000001 in binary floating point: still the 7th value.
    assert nearest_rank(10, 0.7) == 7
