"""The evaluation report (JSON), its round trip, and the Rich table that shows it. Two reports
are compared, and a change gated, in :mod:`groundgate.evals.compare`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.markup import escape
from rich.table import Table

from groundgate.errors import InvalidRequest

# Latency and cost figures that the gate may hold to a relative rise (``--gate-latency``);
# ``cost_usd_total`` is not one of them: it scales with the number of cases.
EFFICIENCY_GATED = ("latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "cost_usd_mean")
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
