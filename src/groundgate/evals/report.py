"""The evaluation report (JSON), its round trip, the baseline comparison that gates a change,
and the Rich tables that show both.

The gate (:func:`compare`) treats metrics in three ways:

- Quality metrics, higher is better (``exact``, ``f1``, ``rules_pass``,
  ``abstention_accuracy``, ``recall@K``, ``mrr``, ``ndcg@10``): fail when
  ``current < baseline - max_drop``. The drop is absolute, in the metric's own unit (all are
  shares in [0, 1]), so ``max_drop=0.02`` allows two points of F1 to be lost, whatever the
  baseline's level.
- ``errors`` (failed cases): fail when the count rises at all.
- Latency and cost: informational, never failing, unless ``gate_latency=True``; then
  ``latency_p50_ms``, ``latency_p95_ms``, ``latency_mean_ms`` and ``cost_usd_mean`` fail when
  they rise by more than ``max_increase`` relative to the baseline (default 0.25: 25 % slower
  or dearer; from a baseline of 0 any rise fails). ``cost_usd_total`` is never gated: it
  scales with the number of cases.

A metric missing on either side (absent, or null because no case covered it) is skipped with a
note, as is ``mrr`` when the two reports used different k (recall@K carries its k in its name,
so different k never compare).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.markup import escape
from rich.table import Table

from groundgate.errors import InvalidRequest

QUALITY = ("exact", "f1", "rules_pass", "abstention_accuracy", "mrr", "ndcg@10")
EFFICIENCY_GATED = ("latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "cost_usd_mean")
EFFICIENCY = (*EFFICIENCY_GATED, "cost_usd_total")
# The order metrics are shown in; recall@K goes after exact..abstention_accuracy.
DISPLAY_ORDER = (
    "exact",
    "f1",
    "rules_pass",
    "abstention_accuracy",
    "recall@",
    "mrr",
    "ndcg@10",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_mean_ms",
    "cost_usd_total",
    "cost_usd_mean",
    "errors",
)

MetricValue = float | int | None


def is_quality(name: str) -> bool:
    return name in QUALITY or name.startswith("recall@")


def metric_order(name: str) -> tuple[int, str]:
    for position, known in enumerate(DISPLAY_ORDER):
        if name == known or (known.endswith("@") and name.startswith(known)):
            return position, name
    return len(DISPLAY_ORDER), name


class ReportError(InvalidRequest):
    """A report file cannot be read (missing, not JSON, or not a report)."""


class CaseRecord(BaseModel):
    """One case's outcome: what the system did and the scores that apply to it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    question: str
    answerable: bool = True
    answer: str = ""
    abstained: bool = False
    retrieved_ids: list[str] = Field(default_factory=list)
    cited_ids: list[str] = Field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    trace_id: str | None = None
    error: str | None = None
    # Only the metrics that apply to this case: no key rather than a misleading 0.
    scores: dict[str, float] = Field(default_factory=dict)
    # What the scorers of ``evals/scoring.py`` spent on this case (an LLM judge's calls), and
    # what they kept on it (the judge's prompt version and reasons, unsupported sentences).
    scoring_cost_usd: float = 0.0
    scoring_calls: int = 0
    details: dict[str, Any] = Field(default_factory=dict)
    # Answered from the eval cache: latency and cost are those recorded when it was answered.
    cached: bool = False
    attempts: int = 1  # calls to the system under test (retries included; 0 when cached)


class EvalReport(BaseModel):
    """The whole run. ``metrics`` values are null when no case covered the metric;
    ``coverage`` says how many cases each metric's mean is over."""

    model_config = ConfigDict(extra="ignore")

    dataset: str | None = None
    app: str | None = None
    created_at: str
    cases: int
    k: int = 10
    metrics: dict[str, MetricValue]
    coverage: dict[str, int] = Field(default_factory=dict)
    per_case: list[CaseRecord] = Field(default_factory=list)
    # What produced the answers (evals/fingerprint.py), when the system under test says.
    dataset_hash: str | None = None
    config_digest: str | None = None
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    model_versions: dict[str, list[str]] = Field(default_factory=dict)
    kb_version: str | None = None
    variant: str | None = None
    # This run's own spend: cases answered from the eval cache cost nothing now (their
    # recorded cost stays in metrics.cost_usd_total).
    cached_cases: int = 0
    answerer_calls: int = 0
    rerun_cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def write_report(report: EvalReport, path: str | Path) -> Path:
    """Write the report as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_report(path: str | Path) -> EvalReport:
    """Read a report written by :func:`write_report`; :class:`ReportError` if it is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read report {path}: {exc}") from exc
    try:
        return EvalReport.model_validate_json(text)
    except ValidationError as exc:
        details = []
        for error in exc.errors(include_url=False)[:5]:
            where = ".".join(str(part) for part in error["loc"])
            details.append(f"{where}: {error['msg']}" if where else error["msg"])
        detail = "; ".join(details)
        raise ReportError(f"{path} is not an evaluation report ({detail})") from exc


# -- the gate --------------------------------------------------------------------------------

Status = Literal["pass", "fail", "info", "skipped"]


@dataclass(slots=True)
class MetricComparison:
    name: str
    baseline: float | None
    current: float | None
    status: Status
    note: str = ""

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseline": self.baseline,
            "current": self.current,
            "delta": self.delta,
            "status": self.status,
            "note": self.note,
        }


@dataclass(slots=True)
class GateResult:
    max_drop: float
    comparisons: list[MetricComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_drop": self.max_drop,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "notes": list(self.notes),
        }


def compare(
    report: EvalReport,
    baseline: EvalReport,
    max_drop: float = 0.02,
    *,
    gate_latency: bool = False,
    max_increase: float = 0.25,
) -> GateResult:
    """Compare ``report`` with ``baseline`` metric by metric (rules in the module docstring)."""
    if not max_drop >= 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")
    if not max_increase >= 0:
        raise ValueError(f"max_increase must be >= 0, got {max_increase}")
    result = GateResult(max_drop=max_drop)
    if report.dataset != baseline.dataset:
        result.notes.append(f"datasets differ: {report.dataset} vs baseline {baseline.dataset}")
    if report.cases != baseline.cases:
        result.notes.append(f"{report.cases} cases vs {baseline.cases} in the baseline")
    k_differs = report.k != baseline.k
    if k_differs:
        result.notes.append(f"k = {report.k} vs {baseline.k} in the baseline")

    for name in sorted(set(report.metrics) | set(baseline.metrics), key=metric_order):
        before, now = baseline.metrics.get(name), report.metrics.get(name)
        if before is None or now is None:
            side = (
                "both"
                if before is None and now is None
                else "baseline"
                if before is None
                else "this run"
            )
            result.comparisons.append(
                MetricComparison(name, before, now, "skipped", f"no value in {side}")
            )
            continue
        if name == "mrr" and k_differs:
            result.comparisons.append(
                MetricComparison(name, before, now, "skipped", "different k, not comparable")
            )
            continue
        judged = _judge(name, float(before), float(now), max_drop, gate_latency, max_increase)
        covered_now, covered_before = report.coverage.get(name), baseline.coverage.get(name)
        if None not in (covered_now, covered_before) and covered_now != covered_before:
            coverage_note = f"{covered_now} cases vs {covered_before} in the baseline"
            judged.note = f"{coverage_note}; {judged.note}" if judged.note else coverage_note
        result.comparisons.append(judged)
    return result


def _judge(
    name: str, before: float, now: float, max_drop: float, gate_latency: bool, max_increase: float
) -> MetricComparison:
    if is_quality(name):
        # A tiny epsilon keeps float noise (0.8 - 0.02 vs 0.78) from failing an exact drop.
        failed = now < before - max_drop - 1e-12
        note = f"dropped more than {max_drop:g}" if failed else ""
        return MetricComparison(name, before, now, "fail" if failed else "pass", note)
    if name == "errors":
        failed = now > before
        return MetricComparison(
            name, before, now, "fail" if failed else "pass", "more failed cases" if failed else ""
        )
    if gate_latency and name in EFFICIENCY_GATED:
        limit = before * (1 + max_increase)
        failed = now > limit + 1e-12
        note = f"rose more than {max_increase:.0%}" if failed else ""
        return MetricComparison(name, before, now, "fail" if failed else "pass", note)
    return MetricComparison(name, before, now, "info")


# -- tables ----------------------------------------------------------------------------------


def format_metric(name: str, value: MetricValue) -> str:
    if value is None:
        return "-"
    if name == "errors":
        return str(int(value))
    if name.startswith("cost_usd"):
        return f"${value:.6f}"
    if name.endswith("_ms"):
        return f"{value:.1f} ms"
    return f"{value:.4f}"


def _format_delta(name: str, delta: float | None) -> str:
    if delta is None:
        return ""
    if name == "errors":
        return f"{int(delta):+d}"
    if name.startswith("cost_usd"):
        return f"{delta:+.6f}"
    if name.endswith("_ms"):
        return f"{delta:+.1f} ms"
    return f"{delta:+.4f}"


def metrics_table(report: EvalReport) -> Table:
    title = escape(f"{report.app or 'eval'} on {report.dataset or 'dataset'}: {report.cases} cases")
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("cases", justify="right")
    for name in sorted(report.metrics, key=metric_order):
        covered = report.coverage.get(name)
        table.add_row(
            name, format_metric(name, report.metrics[name]), "" if covered is None else str(covered)
        )
    return table


_STATUS_STYLE = {"pass": "green", "fail": "bold red", "info": "dim", "skipped": "yellow"}


def comparison_table(gate: GateResult) -> Table:
    verdict = "[green]PASS[/]" if gate.passed else "[bold red]FAIL[/]"
    table = Table(title=f"Gate vs baseline (max drop {gate.max_drop:g}): {verdict}")
    for column in ("metric", "baseline", "current", "delta", "status", "note"):
        justify: Literal["left", "right"] = (
            "right" if column in ("baseline", "current", "delta") else "left"
        )
        table.add_column(column, justify=justify)
    for c in gate.comparisons:
        table.add_row(
            c.name,
            format_metric(c.name, c.baseline),
            format_metric(c.name, c.current),
            _format_delta(c.name, c.delta),
            f"[{_STATUS_STYLE[c.status]}]{c.status}[/]",
            escape(c.note),
        )
    return table
