"""The gate (``compare_runs``) on constructed reports: paired metrics fail only on a drop beyond
``max_drop`` that is significant, aggregates are informational unless ``gate_latency``, what
cannot be compared is skipped with a note, and the tables show it all."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from groundgate.evals.compare import (
    MetricDiff,
    RunComparison,
    compare_runs,
    comparison_table,
    flips_table,
)
from groundgate.evals.report import CaseRecord, EvalReport

N = 40
BASE_SCORES = {"exact": 1.0, "f1": 0.8, "rules_pass": 1.0, "recall@10": 0.7, "mrr": 0.6}
BASE_METRICS: dict[str, float | int | None] = {
    "latency_p50_ms": 100.0,
    "latency_p95_ms": 200.0,
    "latency_mean_ms": 120.0,
    "cost_usd_total": 0.5,
    "cost_usd_mean": 0.005,
    "errors": 1,
}


def run(
    shift: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    ids: range = range(N),
    **fields: Any,
) -> EvalReport:
    """A run of cases ``ids``, each scoring BASE_SCORES moved by ``shift`` (every case alike)."""
    scores = {name: value + (shift or {}).get(name, 0.0) for name, value in BASE_SCORES.items()}
    cases = [CaseRecord(id=f"c{i:02d}", question=f"q{i}?", scores=dict(scores)) for i in ids]
    defaults: dict[str, Any] = {
        "dataset": "cases.jsonl",
        "created_at": "2024-01-01T00:00:00+00:00",
        "cases": len(cases),
        "metrics": {**BASE_METRICS, **(metrics or {})},
        "per_case": cases,
    }
    return EvalReport(**{**defaults, **fields})


def by_name(result: RunComparison) -> dict[str, MetricDiff]:
    return {m.name: m for m in result.metrics}


def test_identical_runs_pass_in_display_order() -> None:
    result = compare_runs(run(), run())
    assert result.passed and not result.notes and result.matched == N and not result.flips
    statuses = {m.name: m.status for m in result.metrics}
    assert statuses["f1"] == "pass" and statuses["errors"] == "info"
    assert statuses["latency_p95_ms"] == "info" and statuses["cost_usd_total"] == "info"
    # Paired metrics in the report's display order (recall@K before mrr), then the aggregates.
    assert [m.name for m in result.metrics][:5] == ["exact", "f1", "rules_pass", "recall@10", "mrr"]
    assert result.metrics[-1].name == "errors"


def test_a_significant_drop_beyond_max_drop_fails_exactly_max_drop_passes() -> None:
    # Every case 0.02 lower (0.80 -> 0.78): significant, but not beyond max_drop.
    at_limit = by_name(compare_runs(run(), run({"f1": -0.02}), max_drop=0.02))["f1"]
    assert at_limit.status == "pass" and at_limit.note == ""
    result = compare_runs(run(), run({"f1": -0.0201}), max_drop=0.02)
    (failure,) = result.failures
    assert failure.name == "f1" and failure.delta == pytest.approx(-0.0201)
    assert failure.note == "dropped more than 0.02, significant"
    # The drop is absolute: a larger max_drop lets the same run pass.
    assert compare_runs(run(), run({"f1": -0.0201}), max_drop=0.05).passed
    # Every per-case score is gated, whatever its name; improvements pass.
    for name in BASE_SCORES:
        worse = compare_runs(run(), run({name: -0.1}))
        assert [m.name for m in worse.failures] == [name]
    assert compare_runs(run(), run({"f1": 0.1})).passed


def test_a_drop_within_noise_passes_with_a_note_and_lists_the_flips() -> None:
    a = run()
    b = run()
    b.per_case[3].scores["rules_pass"] = 0.0  # two cases of forty: 0.05 lower, but noise
    b.per_case[7].scores["rules_pass"] = 0.0
    a.per_case[9].scores["f1"] = 0.4  # one case now passes f1
    result = compare_runs(a, b)
    rules = by_name(result)["rules_pass"]
    assert result.passed and rules.status == "pass" and rules.paired is not None
    assert rules.note == "dropped more than 0.02, within noise" and not rules.paired.significant
    flips = result.to_dict()
    assert [(f["id"], f["metric"]) for f in flips["regressed"]] == [
        ("c03", "rules_pass"),
        ("c07", "rules_pass"),
    ]
    assert [(f["id"], f["metric"]) for f in flips["fixed"]] == [("c09", "f1")]


def test_latency_and_cost_are_informational_unless_gated() -> None:
    slower = run(metrics={"latency_p95_ms": 1000.0, "cost_usd_mean": 0.05, "cost_usd_total": 5.0})
    assert compare_runs(run(), slower).passed
    gated = compare_runs(run(), slower, gate_latency=True)
    assert {m.name for m in gated.failures} == {"latency_p95_ms", "cost_usd_mean"}
    # Within the allowed relative increase (25 % by default): 240 ms vs 200 ms passes.
    assert compare_runs(run(), run(metrics={"latency_p95_ms": 240.0}), gate_latency=True).passed
    assert not compare_runs(run(), run(metrics={"latency_p95_ms": 260.0}), gate_latency=True).passed
    # From a free baseline any cost fails.
    free = run(metrics={"cost_usd_mean": 0.0})
    assert not compare_runs(free, run(metrics={"cost_usd_mean": 0.001}), gate_latency=True).passed
    # Failed cases already score 0 where they count: errors are shown, not gated.
    assert by_name(compare_runs(run(), run(metrics={"errors": 5})))["errors"].status == "info"


def test_what_cannot_be_compared_is_skipped_with_a_note() -> None:
    a = run(metrics={"latency_p50_ms": None})
    b = run()
    for case in b.per_case:
        del case.scores["mrr"]
    diffs = by_name(compare_runs(a, b))
    assert (diffs["mrr"].status, diffs["mrr"].note) == ("skipped", "no case scored in both runs")
    p50 = diffs["latency_p50_ms"]
    assert (p50.status, p50.note) == ("skipped", "no value in one run")
    assert compare_runs(a, b).passed


def test_unmatched_cases_and_datasets_are_noted() -> None:
    result = compare_runs(run(ids=range(0, 30)), run(ids=range(5, 40), dataset="other.jsonl"))
    assert result.matched == 25 and len(result.only_a) == 5 and len(result.only_b) == 10
    assert "datasets differ: cases.jsonl vs other.jsonl" in result.notes
    assert "25 cases in both runs; 5 only in A, 10 only in B (not compared)" in result.notes
    # ``metrics`` limits the paired metrics and leaves the aggregates out.
    assert [m.name for m in compare_runs(run(), run(), metrics=["f1"]).metrics] == ["f1"]


@pytest.mark.parametrize("kwargs", [{"max_drop": -0.1}, {"confidence": 1.0}])
def test_bad_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        compare_runs(run(), run(), **kwargs)


def test_tables_render() -> None:
    worse = run({"f1": -0.3})
    worse.per_case[0].scores["rules_pass"] = 0.0
    result = compare_runs(run(), worse)
    console = Console(record=True, width=200)
    console.print(comparison_table(result, "base", "run"))
    table = flips_table(result)
    assert table is not None and flips_table(compare_runs(run(), run())) is None
    console.print(table)
    text = console.export_text()
    assert "run vs base: 40 paired cases, 95% CI, max drop 0.02: FAIL" in text
    assert "0.8000" in text and "-0.300" in text and "$0.005000" in text and "200.0 ms" in text
    assert "1 passed->failed, 0 failed->passed" in text and "c00" in text
