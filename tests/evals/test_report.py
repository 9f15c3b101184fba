"""Report round trip, a report that cannot be read, and its table (the gate that compares
two reports: test_compare.py)."""

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


def test_the_metrics_table_renders() -> None:
    console = Console(record=True, width=200)
    console.print(metrics_table(make({"rules_pass": None}, coverage={"f1": 90})))
    text = console.export_text()
    assert "support-bot on cases.jsonl: 100 cases" in text
    assert "0.8000" in text and "$0.005000" in text and "200.0 ms" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    assert " 90 " in rows["f1"] and "-" in rows["rules_pass"]
    # Shown in display order: recall@K after abstention_accuracy, errors last.
    assert list(rows) == [
        "exact",
        "f1",
        "rules_pass",
        "abstention_accuracy",
        "recall@10",
        "mrr",
        "ndcg@10",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_mean_ms",
        "cost_usd_total",
        "cost_usd_mean",
        "errors",
    ]
