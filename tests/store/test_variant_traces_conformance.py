"""``Store.variant_traces``: the traces of one A/B split in a time window, the same for every
backend (the ``store`` fixture)."""

from __future__ import annotations

from groundgate.observe.trace import Trace
from groundgate.store.base import Store
from tests.store.test_trace_conformance import make_trace


def split_trace(
    trace_id: str, target: str, variant: str, at: float, tenant: str = "default", **fields: object
) -> Trace:
    attrs = {"variant": {"target": target, "name": variant}}
    return make_trace(trace_id, tenant, created_at=at, attrs=attrs, **fields)


async def test_variant_traces_of_one_target_in_a_window(store: Store) -> None:
    guards = {"decisions": [{"guard": "pii", "action": "redact"}, {"guard": "x", "action": "flag"}]}
    traces = [
        split_trace("t1", "bot", "a", 100.0, latency_ms=12.5, cost_usd=0.25),
        make_trace(
            "t2",
            created_at=101.0,
            status="error",
            attrs={"variant": {"target": "bot", "name": "b", "model": "big"}, "guards": guards},
        ),
        split_trace("t3", "other", "a", 102.0),  # another experiment
        split_trace("t4", "bot", "a", 50.0),  # before the window
        split_trace("t5", "bot", "a", 200.0),  # at its end: excluded
        make_trace("t6", created_at=103.0, model="bot"),  # the target, outside any split
        split_trace("t7", "bot", "b", 104.0, tenant="elsewhere"),  # another tenant
    ]
    await store.write_traces(traces)
    got = await store.variant_traces("default", "bot", 100.0, 200.0)
    assert [(t.trace_id, t.variant, t.status) for t in got] == [
        ("t1", "a", "ok"),
        ("t2", "b", "error"),
    ]
    assert (got[0].latency_ms, got[0].cost_usd, got[0].guard_actions) == (12.5, 0.25, ())
    assert got[1].guard_actions == ("redact", "flag")
    assert await store.variant_traces("default", "bot' OR '1'='1", 0.0, 1e12) == []
    assert [t.trace_id for t in await store.variant_traces("elsewhere", "bot", 0.0, 1e12)] == ["t7"]
