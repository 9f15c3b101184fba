"""Drift: is this app's or model's traffic still what it was? One monitor per gateway process,
fed from each finished request (by the record stage) and from feedback (``record_feedback``),
with rolling windows per target and signal compared with a baseline (``drift_windows.py``).

Signals: where the questions point (the centroid of their embeddings), how well retrieval
matched them (the top passage's score), how often the answer abstained, how grounded it was,
and what users said of it. Nothing is computed for drift on the request path: each signal is
read from what the request already produced, and a request without one (no vector, no
retrieval) simply adds nothing to that signal.

Only the targets in config are watched, so the metrics' labels are bounded by config. Each
worker keeps its own windows over the requests it serves (see ``drift_metrics.py`` for what a
scrape of several workers shows). The baseline lives in memory: a restart learns a new one,
which is what "quality that degrades without a code change" asks for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from groundgate.config_drift import DriftConfig, Signal
from groundgate.errors import ConfigError
from groundgate.observe.drift_metrics import DriftMetrics
from groundgate.observe.drift_windows import (
    Comparison,
    DriftWindows,
    ScalarSums,
    VectorSums,
    WindowPolicy,
)

Vectors = Mapping[tuple[str, str], NDArray[np.floating[Any]]]
_SCALAR_SIGNALS: tuple[Signal, ...] = (
    "retrieval_score",
    "abstention",
    "groundedness",
    "feedback",
)


class TargetDrift:
    """The windows of one target: one per scalar signal watched, and the embedding centroid's
    once the first vector says how many dimensions it has."""

    __slots__ = ("embedder", "embedding", "model_key", "scalars")

    def __init__(self, policy: WindowPolicy, signals: Iterable[Signal], embedder: str | None):
        watched = set(signals)
        self.scalars: dict[Signal, DriftWindows[ScalarSums]] = {
            s: DriftWindows(policy, ScalarSums) for s in _SCALAR_SIGNALS if s in watched
        }
        self.embedding: DriftWindows[VectorSums] | None = None
        # The embedder whose vectors count (the prefix of their model key, "name:"), and the
        # one model key they come from, fixed by the first vector seen: vectors of different
        # models live in different spaces.
        self.embedder = None if "embedding" not in watched else f"{embedder}:" if embedder else ""
        self.model_key: str | None = None


class DriftMonitor:
    def __init__(
        self,
        config: DriftConfig,
        targets: Iterable[str],
        metrics: DriftMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.policy = WindowPolicy(
            window_requests=config.window_requests,
            window_s=config.window_s,
            min_samples=config.min_samples,
            baseline_windows=config.baseline_windows,
            baseline_decay=config.baseline_decay,
        )
        self.targets: dict[str, TargetDrift] = {
            name: TargetDrift(self.policy, config.signals, config.embedder) for name in targets
        }
        if metrics is not None:
            for name in self.targets:
                for signal in config.signals:
                    metrics.bound_is(name, signal, config.bounds.of(signal))

    def watches(self, target: str) -> bool:
        return target in self.targets

    def observe(
        self,
        target: str,
        *,
        vectors: Vectors | None = None,
        retrieval_score: float | None = None,
        abstained: bool | None = None,
        groundedness: float | None = None,
    ) -> None:
        """One finished request of ``target`` (an app or model name); None: no such signal."""
        state = self.targets.get(target)
        if state is None:
            return
        now = self.clock()
        if vectors and state.embedder is not None:
            self._embedding(target, state, vectors, now)
        if retrieval_score is not None:
            self._scalar(target, state, "retrieval_score", retrieval_score, now)
        if abstained is not None:
            self._scalar(target, state, "abstention", 1.0 if abstained else 0.0, now)
        if groundedness is not None:
            self._scalar(target, state, "groundedness", groundedness, now)

    def record_feedback(self, target: str, score: float) -> None:
        """A user's score of an answer of ``target`` (the trace's ``attrs.app`` when set, else
        its ``model``), on the feedback store's scale. Call it on the event loop's thread."""
        state = self.targets.get(target)
        if state is not None:
            self._scalar(target, state, "feedback", score, self.clock())

    def _scalar(
        self, target: str, state: TargetDrift, signal: Signal, value: float, now: float
    ) -> None:
        windows = state.scalars.get(signal)
        if windows is not None and math.isfinite(value):  # one NaN would poison the sums
            windows.open.add(value)
            self._closed(target, signal, windows.added(now))

    def _embedding(self, target: str, state: TargetDrift, vectors: Vectors, now: float) -> None:
        for (model_key, _text), vector in vectors.items():
            if state.model_key is None:
                if not model_key.startswith(state.embedder or ""):
                    continue
                state.model_key = model_key
                state.embedding = DriftWindows(self.policy, partial(VectorSums, len(vector)))
            if model_key == state.model_key and state.embedding is not None:
                state.embedding.open.add(vector)
                self._closed(target, "embedding", state.embedding.added(now))
                return

    def _closed(
        self,
        target: str,
        signal: Signal,
        comparison: Comparison[ScalarSums] | Comparison[VectorSums] | None,
    ) -> None:
        if comparison is not None and self.metrics is not None:
            self.metrics.compared(target, signal, comparison)


def build_drift_monitor(
    config: DriftConfig,
    declared: Iterable[str],
    embedders: Iterable[str],
    metrics: DriftMetrics | None,
) -> DriftMonitor:
    """The monitor of the targets config names (``drift.targets``, else every ``declared`` app
    and model); one that watches nothing when drift is off. A target or embedder config does
    not declare is a :class:`ConfigError`."""
    if not config.enabled:
        return DriftMonitor(config, ())
    known = list(declared)
    problems = [
        f"drift.targets[{i}]: {name!r} is not an app or model"
        for i, name in enumerate(config.targets or ())
        if name not in known
    ]
    if config.embedder is not None and config.embedder not in set(embedders):
        problems.append(f"drift.embedder: unknown embedder {config.embedder!r}")
    if problems:
        raise ConfigError(problems)
    watched = known if config.targets is None else list(dict.fromkeys(config.targets))
    return DriftMonitor(config, watched, metrics)
