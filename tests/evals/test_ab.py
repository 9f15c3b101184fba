"""The A/B comparison (evals/ab.py): per-variant means with bootstrap intervals, differences to
the control, guard outcomes, and feedback when there is some."""

from __future__ import annotations

import numpy as np
import pytest

from groundgate.evals.ab import compare
from groundgate.store.variants import VariantTrace


def traces(variant: str, latencies: list[float], cost: float, **kw: object) -> list[VariantTrace]:
    fields: dict[str, object] = {"status": "ok", "guard_actions": ()} | kw
    return [
        VariantTrace(f"{variant}{i}", float(i), variant, latency_ms=ms, cost_usd=cost, **fields)  # type: ignore[arg-type]
        for i, ms in enumerate(latencies)
    ]


def test_a_real_difference_is_found_and_no_difference_is_not() -> None:
    rng = np.random.default_rng(1)
    fast = list(rng.normal(100, 10, 300))
    slow = list(rng.normal(130, 10, 300))
    data = (
        traces("a", fast, 0.001)
        + traces("b", slow, 0.003)
        + traces("c", fast, 0.001, guard_actions=("flag",))
    )
    result = compare("bot", data, order=["a", "b", "c"])
    a, b, c = result.variants
    assert (result.control, a.vs_control) == ("a", None)
    latency = b.vs_control["latency_ms"] if b.vs_control else None
    assert latency is not None and latency.low is not None and latency.high is not None
    # b is ~30 ms slower: the interval holds the true difference and leaves out 0.
    assert 20 < latency.low < 30 < latency.high < 40 and latency.excludes_zero
    assert b.vs_control is not None and b.vs_control["cost_usd"].value == pytest.approx(0.002)
    # c answers exactly like a: no difference in latency, all of its requests flagged.
    assert c.vs_control is not None and not c.vs_control["latency_ms"].excludes_zero
    assert (c.metrics["guard_flag"].value, a.metrics["guard_flag"].value) == (1.0, 0.0)
    mean = a.metrics["latency_ms"]
    assert mean.low is not None and mean.high is not None
    assert mean.low < float(np.mean(fast)) < mean.high
    assert a.requests == 300 and a.latency_p50_ms == float(np.percentile(fast, 50))
    # Seeded: the same traces give the same report.
    assert compare("bot", data, order=["a", "b", "c"]).as_dict() == result.as_dict()
    assert result.as_dict()["feedback"] == "no feedback recorded"


def test_errors_count_in_the_error_rate_not_in_latency_and_feedback_joins_by_trace() -> None:
    data = [*traces("a", [10.0, 10.0], 0.0), VariantTrace("e", 2.0, "a", "error", 9999, 0, ())]
    result = compare("bot", data, feedback={"a0": 1.0, "a1": 0.0})
    (a,) = result.variants
    assert a.metrics["error_rate"].value == 1 / 3
    assert a.metrics["latency_ms"].value == 10.0
    assert a.metrics["feedback"].value == 0.5 and a.metrics["feedback"].n == 2
    assert result.has_feedback
