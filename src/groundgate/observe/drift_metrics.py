"""Drift gauges, registered on the Metrics registry (``Metrics.registry``).

* ``groundgate_drift_distance{target,signal}``: how far the last closed window is from the
  baseline (absent until a target's signal has a baseline and a window after it).
* ``groundgate_drift_bound{target,signal}``: the configured bound, so that the alert rule is
  ``groundgate_drift_distance > groundgate_drift_bound`` (deploy/prometheus/drift-rules.yml).
* ``groundgate_drift_mean{target,signal,window}``: a scalar signal's mean in the last closed
  window (``current``) and in the baseline it was compared with (``baseline``).

Labels: targets from config (``drift.targets``), signals and windows from code.

Several workers (prometheus-client multiprocess mode): each worker watches the requests it
serves, with windows of its own. A scrape shows, per series, the largest distance of any live
worker (``livemax``: the alert fires when any worker's traffic has moved), the bound (the same
in every worker) and the means of the worker that closed a window last (``livemostrecent``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from groundgate.observe.drift_windows import Comparison, ScalarSums, VectorSums


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.distance = Gauge(
            "groundgate_drift_distance",
            "Distance of the last closed window of a signal from its baseline: cosine distance "
            "of the question-embedding centroids, else the difference of the means.",
            ["target", "signal"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.bound = Gauge(
            "groundgate_drift_bound",
            "The distance from the baseline beyond which a signal has drifted (drift.bounds).",
            ["target", "signal"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.mean = Gauge(
            "groundgate_drift_mean",
            "A signal's mean in the last closed window (window=current) and in its baseline "
            "(window=baseline): retrieval top score, abstention rate, groundedness, feedback.",
            ["target", "signal", "window"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )

    def bound_is(self, target: str, signal: str, bound: float) -> None:
        self.bound.labels(target, signal).set(bound)

    def compared(
        self, target: str, signal: str, comparison: Comparison[ScalarSums] | Comparison[VectorSums]
    ) -> None:
        """A window closed (once per window, never per request)."""
        self.distance.labels(target, signal).set(comparison.drift)
        current, baseline = comparison.current, comparison.baseline
        if isinstance(current, ScalarSums) and isinstance(baseline, ScalarSums):
            self.mean.labels(target, signal, "current").set(current.mean())
            self.mean.labels(target, signal, "baseline").set(baseline.mean())
