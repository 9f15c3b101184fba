"""Two runs compared case by case (``groundgate eval compare A B`` and the gate of
``groundgate eval run --baseline``): the paired difference of every metric with its
confidence interval and significance (:mod:`groundgate.evals.bootstrap`), and the cases that
flipped.

Cases are matched by id; only cases both runs scored on a metric count towards it. Every
per-case score is "higher is better" in [0, 1] (the built-in metrics and any scorer's).

The gate fails a quality metric only when B is worse than A by more than ``max_drop`` AND the
drop is significant: a gate that passes on noise (a few cases moving either way) and fails on a
real regression. Latency and cost (from the reports' aggregates) are informational unless
``gate_latency``: then the p50/p95/mean latency and the mean cost fail when they rise by more
than ``max_increase`` (relative). Failed cases already score 0 on every metric that applies, so
``errors`` is shown, not gated on its own.

A flip: a case that passed on a metric in A and failed in B (``regressed``) or the reverse
(``fixed``). Binary metrics pass at 1; a continuous one (F1, recall, MRR, similarity...)
passes at :data:`PASS_AT` or more.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.markup import escape
from rich.table import Table

from groundgate.evals.bootstrap import (
    CONFIDENCE,
    RESAMPLES,
    Estimate,
    PairedDifference,
    paired_difference,
)
from groundgate.evals.report import (
    EFFICIENCY_GATED,
    EvalReport,
    format_metric,
    metric_order,
)

PASS_AT = 0.5
# Aggregates shown after the paired metrics (informational unless gate_latency).
AGGREGATES = (*EFFICIENCY_GATED, "cost_usd_total", "errors")

Status = Literal["pass", "fail", "info", "skipped"]
Direction = Literal["regressed", "fixed"]


@dataclass(slots=True)
class MetricDiff:
    name: str
    status: Status
    a: float | None
    b: float | None
    paired: PairedDifference | None = None  # None: an aggregate, compared as a figure
    note: str = ""

    @property
    def delta(self) -> float | None:
        if self.paired is not None:
            return self.paired.diff.value
        return None if self.a is None or self.b is None else self.b - self.a

    def to_dict(self) -> dict[str, Any]:
        paired = self.paired
        return {
            "name": self.name,
            "status": self.status,
            "a": self.a,
            "b": self.b,
            "delta": self.delta,
            "ci": None if paired is None else [paired.diff.low, paired.diff.high],
            "p_value": None if paired is None else paired.p_value,
            "significant": None if paired is None else paired.significant,
            "cases": None if paired is None else paired.n,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Flip:
    case_id: str
    metric: str
    a: float
    b: float

    @property
    def direction(self) -> Direction:
        return "regressed" if self.b < self.a else "fixed"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.case_id, "metric": self.metric, "a": self.a, "b": self.b}


@dataclass(slots=True)
class RunComparison:
    max_drop: float
    confidence: float
    matched: int  # cases present in both runs
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    metrics: list[MetricDiff] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[MetricDiff]:
        return [m for m in self.metrics if m.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_drop": self.max_drop,
            "confidence": self.confidence,
            "matched_cases": self.matched,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "metrics": [m.to_dict() for m in self.metrics],
            "regressed": [f.to_dict() for f in self.flips if f.direction == "regressed"],
            "fixed": [f.to_dict() for f in self.flips if f.direction == "fixed"],
            "notes": list(self.notes),
        }


def passes(value: float) -> bool:
    return value >= PASS_AT


def compare_runs(
    a: EvalReport,
    b: EvalReport,
    *,
    max_drop: float = 0.02,
    confidence: float = CONFIDENCE,
    metrics: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    gate_latency: bool = False,
    max_increase: float = 0.25,
) -> RunComparison:
    """Compare run ``b`` with run ``a`` (the baseline); ``metrics`` limits the paired metrics
    compared (default: every per-case score either run has)."""
    if not max_drop >= 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    cases_a = {r.id: r for r in a.per_case}
    cases_b = {r.id: r for r in b.per_case}
    shared = [case_id for case_id in cases_a if case_id in cases_b]
    result = RunComparison(
        max_drop,
        confidence,
        len(shared),
        only_a=[i for i in cases_a if i not in cases_b],
        only_b=[i for i in cases_b if i not in cases_a],
    )
    if a.dataset != b.dataset:
        result.notes.append(f"datasets differ: {a.dataset} vs {b.dataset}")
    if result.only_a or result.only_b:
        result.notes.append(
            f"{len(shared)} cases in both runs; {len(result.only_a)} only in A, "
            f"{len(result.only_b)} only in B (not compared)"
        )
    scored = {n for r in (*a.per_case, *b.per_case) for n in r.scores}
    names = sorted(scored if metrics is None else set(metrics), key=metric_order)
    for name in names:
        pairs = [
            (cases_a[i].scores[name], cases_b[i].scores[name])
            for i in shared
            if name in cases_a[i].scores and name in cases_b[i].scores
        ]
        if not pairs:
            result.metrics.append(
                MetricDiff(name, "skipped", None, None, note="no case scored in both runs")
            )
            continue
        paired = paired_difference(
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            confidence=confidence,
            resamples=resamples,
            seed=seed,
            stream=zlib.crc32(name.encode()),
        )
        result.metrics.append(_judge_quality(name, paired, max_drop))
        result.flips += [
            Flip(i, name, cases_a[i].scores[name], cases_b[i].scores[name])
            for i in shared
            if name in cases_a[i].scores
            and name in cases_b[i].scores
            and passes(cases_a[i].scores[name]) != passes(cases_b[i].scores[name])
        ]
    if metrics is None:
        for name in AGGREGATES:
            result.metrics.append(_aggregate(name, a, b, gate_latency, max_increase))
    return result


def _judge_quality(name: str, paired: PairedDifference, max_drop: float) -> MetricDiff:
    drop = paired.diff.value is not None and paired.diff.value < -max_drop - 1e-12
    if drop and paired.significant:
        note = f"dropped more than {max_drop:g}, significant"
        return MetricDiff(name, "fail", paired.a, paired.b, paired, note)
    note = f"dropped more than {max_drop:g}, within noise" if drop else ""
    return MetricDiff(name, "pass", paired.a, paired.b, paired, note)


def _aggregate(
    name: str, a: EvalReport, b: EvalReport, gate_latency: bool, max_increase: float
) -> MetricDiff:
    before, now = a.metrics.get(name), b.metrics.get(name)
    if before is None or now is None:
        return MetricDiff(name, "skipped", None, None, note="no value in one run")
    if gate_latency and name in EFFICIENCY_GATED:
        failed = now > before * (1 + max_increase) + 1e-12
        note = f"rose more than {max_increase:.0%}" if failed else ""
        return MetricDiff(name, "fail" if failed else "pass", before, now, note=note)
    return MetricDiff(name, "info", float(before), float(now))


# -- tables ----------------------------------------------------------------------------------

_STYLE = {"pass": "green", "fail": "bold red", "info": "dim", "skipped": "yellow"}


def _signed(name: str, value: float | None) -> str:
    if value is None:
        return ""
    if name == "errors":
        return f"{int(value):+d}"
    if name.startswith("cost_usd"):
        return f"{value:+.6f}"
    if name.endswith("_ms"):
        return f"{value:+.1f} ms"
    return f"{value:+.3f}"


def _ci(estimate: Estimate) -> str:
    if estimate.low is None or estimate.high is None:
        return ""
    return f"[{estimate.low:+.3f}, {estimate.high:+.3f}]"


def comparison_table(cmp: RunComparison, a_label: str = "A", b_label: str = "B") -> Table:
    verdict = "[green]PASS[/]" if cmp.passed else "[bold red]FAIL[/]"
    title = (
        f"{escape(b_label)} vs {escape(a_label)}: {cmp.matched} paired cases, "
        f"{cmp.confidence:.0%} CI, max drop {cmp.max_drop:g}: {verdict}"
    )
    table = Table(title=title)
    noted = any(m.note for m in cmp.metrics)
    columns = ("metric", a_label, b_label, "diff", "CI", "p", "sig", "status")
    for column in (*columns, "note") if noted else columns:
        numeric = column in (a_label, b_label, "diff", "CI", "p")
        table.add_column(escape(column), justify="right" if numeric else "left")
    for m in cmp.metrics:
        paired = m.paired
        cells = (
            m.name,
            format_metric(m.name, m.a),
            format_metric(m.name, m.b),
            _signed(m.name, m.delta),
            "" if paired is None else _ci(paired.diff),
            "" if paired is None or paired.p_value is None else f"{paired.p_value:.3f}",
            "" if paired is None else ("yes" if paired.significant else "no"),
            f"[{_STYLE[m.status]}]{m.status}[/]",
            escape(m.note),
        )
        table.add_row(*(cells if noted else cells[:-1]))
    return table


def flips_table(cmp: RunComparison, limit: int = 50) -> Table | None:
    """The cases that flipped, regressions first (None when none did)."""
    if not cmp.flips:
        return None
    flips = sorted(cmp.flips, key=lambda f: (f.direction != "regressed", f.case_id, f.metric))
    regressed = sum(f.direction == "regressed" for f in flips)
    table = Table(
        title=f"Flipped cases: {regressed} passed->failed, {len(flips) - regressed} failed->passed"
    )
    for column in ("case", "metric", "A", "B", "change"):
        table.add_column(column, justify="right" if column in ("A", "B") else "left")
    for flip in flips[:limit]:
        style = "red" if flip.direction == "regressed" else "green"
        change = "passed->failed" if flip.direction == "regressed" else "failed->passed"
        table.add_row(
            escape(flip.case_id),
            flip.metric,
            f"{flip.a:.4f}",
            f"{flip.b:.4f}",
            f"[{style}]{change}[/]",
        )
    if len(flips) > limit:
        table.caption = f"... and {len(flips) - limit} more (see --json)"
    return table
