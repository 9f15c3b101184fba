"""Compare the variants of an A/B split from their stored traces (``groundgate report ab``).

Each variant is measured on its error rate, latency (of answered requests), cost per request,
guard outcomes (the share of requests with a guard decision to block, flag or send for review)
and, where end users left any, feedback. Every mean comes with a bootstrap confidence interval,
and so does each variant's difference to the control (the first variant): resampled with
replacement, ``resamples`` times, from a generator seeded per variant and metric, so a report
over the same traces is the same report. Percentile intervals make no assumption about the
shape of latency or cost, which are far from normal.

Feedback is a score per trace (issue 16's feedback store joins on the trace id); with none
recorded the metric is reported as absent, not as zero.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from groundgate.evals.bootstrap import (
    CONFIDENCE,
    RESAMPLES,
    Estimate,
    Floats,
    estimate,
    resampled_means,
    rng_for,
)
from groundgate.store.variants import VariantTrace

__all__ = ["CONFIDENCE", "METRICS", "RESAMPLES", "Comparison", "Estimate", "compare"]


# A metric's values for one variant's traces (and the feedback scores by trace id).
Values = Callable[[Sequence[VariantTrace], Mapping[str, float]], list[float]]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str  # ms | usd | share | score
    values: Values


def _answered_latency(traces: Sequence[VariantTrace], _: Mapping[str, float]) -> list[float]:
    return [t.latency_ms for t in traces if t.status == "ok"]


def _costs(traces: Sequence[VariantTrace], _: Mapping[str, float]) -> list[float]:
    return [t.cost_usd for t in traces]


def _shares(test: Callable[[VariantTrace], bool]) -> Values:
    """1 for each request ``test`` holds for, 0 for the others: the mean is their share."""

    def values(traces: Sequence[VariantTrace], _: Mapping[str, float]) -> list[float]:
        return [1.0 if test(t) else 0.0 for t in traces]

    return values


def _feedback(traces: Sequence[VariantTrace], scores: Mapping[str, float]) -> list[float]:
    return [scores[t.trace_id] for t in traces if t.trace_id in scores]


METRICS = (
    Metric("error_rate", "share", _shares(lambda t: t.status == "error")),
    Metric("latency_ms", "ms", _answered_latency),
    Metric("cost_usd", "usd", _costs),
    Metric("guard_block", "share", _shares(lambda t: "block" in t.guard_actions)),
    Metric("guard_flag", "share", _shares(lambda t: "flag" in t.guard_actions)),
    Metric("guard_review", "share", _shares(lambda t: "review" in t.guard_actions)),
    Metric("feedback", "score", _feedback),
)


@dataclass(slots=True)
class VariantReport:
    name: str
    requests: int
    latency_p50_ms: float | None
    metrics: dict[str, Estimate] = field(default_factory=dict)
    # The difference to the control, variant minus control (None: this is the control).
    vs_control: dict[str, Estimate] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "latency_p50_ms": self.latency_p50_ms,
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "vs_control": (
                None
                if self.vs_control is None
                else {k: v.as_dict() for k, v in self.vs_control.items()}
            ),
        }


@dataclass(slots=True)
class Comparison:
    target: str
    control: str | None
    variants: list[VariantReport]
    has_feedback: bool
    confidence: float
    resamples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "control": self.control,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "seed": self.seed,
            "feedback": "recorded" if self.has_feedback else "no feedback recorded",
            "units": {m.name: m.unit for m in METRICS},
            "variants": [v.as_dict() for v in self.variants],
        }


def compare(
    target: str,
    traces: Sequence[VariantTrace],
    *,
    order: Sequence[str] = (),
    feedback: Mapping[str, float] | None = None,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """The variants of ``target`` compared. ``order`` lists variant names as configured (the
    first is the control); variants found only in the traces follow, by name. ``feedback``
    maps trace ids to a score (higher is better)."""
    by_variant: dict[str, list[VariantTrace]] = {}
    for trace in traces:
        by_variant.setdefault(trace.variant, []).append(trace)
    names = [n for n in order if n in by_variant]
    names += sorted(n for n in by_variant if n not in names)
    scores = feedback or {}
    reports: list[VariantReport] = []
    control: dict[str, tuple[Estimate, Floats]] = {}  # metric -> the control's mean and draws
    for name in names:
        group = by_variant[name]
        latencies = _answered_latency(group, scores)
        report = VariantReport(
            name,
            requests=len(group),
            latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else None,
            vs_control=None if not reports else {},
        )
        for metric in METRICS:
            values = np.asarray(metric.values(group, scores), dtype=np.float64)
            # Seeded per variant and metric: adding a variant changes no other's draws.
            rng = rng_for(seed, zlib.crc32(f"{name}\x00{metric.name}".encode()))
            draws = resampled_means(values, rng, resamples)
            mean = float(values.mean()) if len(values) else None
            found = report.metrics[metric.name] = estimate(mean, draws, confidence, len(values))
            if report.vs_control is None:
                control[metric.name] = (found, draws)
                continue
            base, base_draws = control[metric.name]
            if mean is None or base.value is None:
                report.vs_control[metric.name] = Estimate(None, n=len(values))
                continue
            # Each draw of the difference pairs one resample of each group (independent).
            report.vs_control[metric.name] = estimate(
                mean - base.value, draws - base_draws, confidence, len(values)
            )
        reports.append(report)
    has_feedback = any(v.metrics["feedback"].n for v in reports)
    return Comparison(
        target,
        names[0] if names else None,
        reports,
        has_feedback,
        confidence,
        resamples,
        seed,
    )
