"""Report round trip and the regression gate on constructed reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from groundgate.evals.report import (
    CaseRecord,
    EvalReport,
    ReportError,
    compare,
    comparison_table,
    load_report,
    metrics_table,
    write_report,
)

BASE_METRICS: dict[str, float | int | None] = {
    "exact": 0.50,
    "f1": 0.80,
    "rules_pass": 0.90,
    "abstention_accuracy": 0.75,
    "recall@10": 0.70,
    "mrr": 0.60,
    "ndcg@10": 0.65,
    "latency_p50_ms": 100.0,
    "latency_p95_ms": 200.0,
    "latency_mean_ms": 120.0,
    "cost_usd_total": 0.5,
    "cost_usd_mean": 0.005,
    "errors": 1,
}


def make(metrics: dict[str, Any] | None = None, **fields: Any) -> EvalReport:
    values = {**BASE_METRICS, **(metrics or {})}
    defaults: dict[str, Any] = {
        "dataset": "cases.jsonl",
        "app": "support-bot",
        "created_at": "2024-01-01T00:00:00+00:00",
        "cases": 100,
        "k": 10,
        "metrics": values,
        "coverage": {name: 100 for name in values},
    }
    return EvalReport(**{**defaults, **fields})


def by_name(report: EvalReport, baseline: EvalReport, **kwargs: Any) -> dict[str, Any]:
    gate = compare(report, baseline, **kwargs)
    return {c.name: c for c in gate.comparisons}


def test_round_trip(tmp_path: Path) -> None:
    record = CaseRecord(
        id="q1",
        question="Where?",
        answer="Paris [1].",
        retrieved_ids=["d1", "d2"],
        cited_ids=["d1"],
        latency_ms=12.5,
        cost_usd=0.0001,
        trace_id="t-1",
        scores={"f1": 1.0, "exact": 1.0},
    )
    report = make({"rules_pass": None}, per_case=[record])
    path = write_report(report, tmp_path / "sub" / "report.json")
    raw = json.loads(path.read_text())
    assert list(raw)[:7] == ["dataset", "app", "created_at", "cases", "k", "metrics", "coverage"]
    assert raw["metrics"]["rules_pass"] is None and raw["metrics"]["errors"] == 1
    assert isinstance(raw["metrics"]["errors"], int)
    assert raw["per_case"][0]["scores"] == {"f1": 1.0, "exact": 1.0}
    loaded = load_report(path)
    assert loaded == report
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left nothing behind


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "cannot read"), ("{not json", "not an evaluation report"), ('{"cases": 3}', "metrics")],
)
def test_load_report_errors(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReportError, match=fragment):
        load_report(path)


def test_identical_reports_pass() -> None:
    gate = compare(make(), make())
    assert gate.passed and not gate.notes
    statuses = {c.name: c.status for c in gate.comparisons}
    assert statuses["f1"] == "pass" and statuses["errors"] == "pass"
    assert statuses["latency_p95_ms"] == "info" and statuses["cost_usd_total"] == "info"
    assert [c.name for c in gate.comparisons][:4] == [
        "exact",
        "f1",
        "rules_pass",
        "abstention_accuracy",
    ]


def test_quality_drop_within_and_beyond_max_drop() -> None:
    # Exactly max_drop lower (0.80 -> 0.78) still passes; 0.7799 does not.
    assert compare(make({"f1": 0.78}), make(), 0.02).passed
    gate = compare(make({"f1": 0.7799}), make(), 0.02)
    assert not gate.passed
    (failure,) = gate.failures
    assert failure.name == "f1" and failure.delta == pytest.approx(-0.0201)
    # The drop is absolute: a larger max_drop lets the same run pass.
    assert compare(make({"f1": 0.7799}), make(), 0.05).passed
    # Every quality metric is gated, recall@K included.
    for name in ("exact", "rules_pass", "abstention_accuracy", "recall@10", "mrr", "ndcg@10"):
        worse = make({name: float(BASE_METRICS[name] or 0) - 0.1})
        assert [c.name for c in compare(worse, make()).failures] == [name]
    # Improvements pass.
    assert compare(make({"f1": 0.95, "exact": 0.9}), make()).passed


def test_more_errors_fail_fewer_pass() -> None:
    assert [c.name for c in compare(make({"errors": 2}), make()).failures] == ["errors"]
    assert compare(make({"errors": 0}), make()).passed


def test_latency_and_cost_are_informational_unless_gated() -> None:
    slower = make({"latency_p95_ms": 1000.0, "cost_usd_mean": 0.05, "cost_usd_total": 5.0})
    assert compare(slower, make()).passed
    gated = compare(slower, make(), gate_latency=True)
    assert {c.name for c in gated.failures} == {"latency_p95_ms", "cost_usd_mean"}
    # Within the allowed relative increase (25 % by default): 240 ms vs 200 ms passes.
    assert compare(make({"latency_p95_ms": 240.0}), make(), gate_latency=True).passed
    assert not compare(make({"latency_p95_ms": 260.0}), make(), gate_latency=True).passed
    # From a free baseline any cost fails.
    free = make({"cost_usd_mean": 0.0})
    assert not compare(make({"cost_usd_mean": 0.001}), free, gate_latency=True).passed


def test_missing_metrics_are_skipped_with_a_note() -> None:
    current = make({"rules_pass": None})
    baseline = make({"extra_metric": 1.0})
    comparisons = by_name(current, baseline)
    assert comparisons["rules_pass"].status == "skipped"
    assert "this run" in comparisons["rules_pass"].note
    assert comparisons["extra_metric"].status == "skipped"
    assert compare(current, baseline).passed


def test_different_k_skips_mrr_and_notes_it() -> None:
    current = make({"recall@5": 0.1, "recall@10": None, "mrr": 0.1}, k=5)
    gate = compare(current, make())
    comparisons = {c.name: c for c in gate.comparisons}
    assert comparisons["mrr"].status == "skipped"
    assert comparisons["recall@5"].status == "skipped"
    assert any("k = 5" in note for note in gate.notes)
    assert gate.passed


def test_dataset_and_coverage_differences_are_noted() -> None:
    current = make(dataset="other.jsonl", cases=90, coverage={"f1": 80})
    gate = compare(current, make())
    assert any("datasets differ" in n for n in gate.notes)
    assert any("90 cases vs 100" in n for n in gate.notes)
    assert "80 cases vs 100" in {c.name: c for c in gate.comparisons}["f1"].note


def test_bad_max_drop_is_rejected() -> None:
    with pytest.raises(ValueError):
        compare(make(), make(), -0.1)


def test_tables_render() -> None:
    console = Console(record=True, width=200)
    console.print(metrics_table(make()))
    console.print(comparison_table(compare(make({"f1": 0.5}), make())))
    text = console.export_text()
    assert "0.8000" in text and "$0.005000" in text and "200.0 ms" in text
    assert "FAIL" in text and "-0.3000" in text
