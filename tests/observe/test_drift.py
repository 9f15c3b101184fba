"""Drift windows, centroid distances and the monitor's gauges, on seeded synthetic traffic: a
stationary stream stays within its bound, a shifted one moves past it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from groundgate.config_drift import DriftBounds, DriftConfig
from groundgate.errors import ConfigError
from groundgate.observe.drift import build_drift_monitor
from groundgate.observe.drift_metrics import DriftMetrics
from groundgate.observe.drift_windows import (
    DriftWindows,
    ScalarSums,
    VectorSums,
    WindowPolicy,
)

DIMS = 64
POLICY = WindowPolicy(window_requests=200, window_s=3600, min_samples=20, baseline_windows=4)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def questions(
    rng: np.random.Generator, topic: NDArray[np.float64], n: int, spread: float = 3.0
) -> NDArray[np.float64]:
    """Unit vectors scattered widely around ``topic`` (centroid length about 0.3, as real
    questions' embeddings are: see VectorSums)."""
    raw = topic + rng.normal(scale=spread / np.sqrt(DIMS), size=(n, DIMS))
    return np.asarray(raw / np.linalg.norm(raw, axis=1, keepdims=True))


def unit(rng: np.random.Generator) -> NDArray[np.float64]:
    v = rng.normal(size=DIMS)
    return np.asarray(v / np.linalg.norm(v))


def feed_vectors(windows: DriftWindows[VectorSums], vectors: NDArray[np.float64]) -> list[float]:
    drifts = []
    for v in vectors:
        windows.open.add(v)
        compared = windows.added(0.0)
        if compared is not None:
            drifts.append(compared.drift)
    return drifts


def test_centroid_distance_stays_within_the_bound_for_one_mix_and_passes_it_for_another() -> None:
    rng = np.random.default_rng(16)
    usual, other = unit(rng), unit(rng)
    bound = DriftBounds().embedding
    windows = DriftWindows(POLICY, lambda: VectorSums(DIMS))
    assert feed_vectors(windows, questions(rng, usual, 800)) == []  # learning the baseline
    assert windows.ready and windows.baseline.count == 800

    stationary = feed_vectors(windows, questions(rng, usual, 2000))
    assert len(stationary) == 10
    assert max(stationary) < bound / 2, stationary

    # Two questions in five now about something else (over ten seeds: 0.13-0.22; the same
    # mix stays under 0.011).
    mixed = np.vstack([questions(rng, usual, 120), questions(rng, other, 80)])
    shifted = feed_vectors(windows, rng.permutation(mixed))
    assert len(shifted) == 1 and shifted[0] > 2 * bound, shifted
    moved = feed_vectors(windows, questions(rng, other, 200))
    assert moved[0] > 0.5


def test_the_noise_is_taken_out_of_the_centroid_distance_at_any_window_size() -> None:
    # The plain cosine of two centroids of widely spread questions grows as windows shrink;
    # the debiased one does not, so one bound holds for any window size.
    rng = np.random.default_rng(7)
    topic = unit(rng)
    for size in (50, 200, 1000):
        a, b = VectorSums(DIMS), VectorSums(DIMS)
        for v in questions(rng, topic, size):
            a.add(v)
        for v in questions(rng, topic, 4 * size):
            b.add(v)
        plain = 1 - a.total @ b.total / np.linalg.norm(a.total) / np.linalg.norm(b.total)
        assert a.distance(b) < DriftBounds().embedding / 2, (size, a.distance(b))
        if size == 50:
            assert plain > DriftBounds().embedding  # the plain distance would pass the bound


def test_a_rate_moves_past_its_bound_only_when_it_changes() -> None:
    rng = np.random.default_rng(3)
    bound = DriftBounds().abstention
    windows = DriftWindows(POLICY, ScalarSums)

    def feed(rate: float, n: int) -> list[float]:
        out = []
        for abstained in rng.random(n) < rate:
            windows.open.add(float(abstained))
            compared = windows.added(0.0)
            if compared is not None:
                out.append(compared.drift)
                assert abs(compared.baseline.mean() - 0.1) < 0.03
        return out

    assert feed(0.1, 800) == []
    assert max(feed(0.1, 4000)) < bound
    shifted = feed(0.35, 400)
    assert min(shifted) > bound
    assert windows.last is not None and abs(windows.last.current.mean() - 0.35) < 0.1


def test_a_window_closes_on_time_once_it_has_enough_samples() -> None:
    policy = WindowPolicy(window_requests=1000, window_s=60, min_samples=5, baseline_windows=1)
    windows = DriftWindows(policy, ScalarSums)
    for i in range(4):
        windows.open.add(1.0)
        assert windows.added(float(i * 30)) is None  # 90 s, but only 4 samples
    windows.open.add(1.0)
    assert windows.added(120.0) is None and windows.ready  # the 5th: the baseline closes
    windows.open.add(0.0)
    assert windows.added(130.0) is None  # opened at 130
    for t in (140.0, 150.0, 160.0, 170.0):
        windows.open.add(0.0)
        assert windows.added(t) is None  # 5 samples, 40 s
    windows.open.add(0.0)
    compared = windows.added(190.0)
    assert compared is not None and compared.drift == 1.0 and compared.current.count == 6


def test_a_slow_baseline_absorbs_a_lasting_change_and_a_frozen_one_does_not() -> None:
    def run(decay: float) -> list[float]:
        policy = WindowPolicy(10, 3600, 10, 1, baseline_decay=decay)
        windows = DriftWindows(policy, ScalarSums)
        drifts = []
        for value in [0.0] * 10 + [1.0] * 300:
            windows.open.add(value)
            compared = windows.added(0.0)
            if compared is not None:
                drifts.append(compared.drift)
        return drifts

    frozen, slow = run(0.0), run(0.2)
    assert frozen == [1.0] * 30
    assert slow[0] == 1.0 and slow[-1] < 0.01
    assert all(later < earlier for earlier, later in itertools.pairwise(slow))


def gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    value = registry.get_sample_value(name, labels)
    return None if value is None else float(value)


def test_the_monitor_exports_drift_past_the_bound_for_watched_targets_only() -> None:
    registry = CollectorRegistry()
    clock = Clock()
    config = DriftConfig(
        targets=["bot"], window_requests=50, min_samples=10, baseline_windows=2, embedder="mini"
    )
    monitor = build_drift_monitor(config, ["bot", "other"], ["mini", "big"], DriftMetrics(registry))
    monitor.clock = clock
    assert monitor.watches("bot") and not monitor.watches("other")
    assert gauge(registry, "groundgate_drift_bound", target="bot", signal="embedding") == 0.05
    assert gauge(registry, "groundgate_drift_bound", target="other", signal="embedding") is None

    rng = np.random.default_rng(11)
    usual, other = unit(rng), unit(rng)

    def request(topic: NDArray[np.float64], grounded: float) -> None:
        (vector,) = questions(rng, topic, 1)
        noise = unit(rng)  # another embedder's vector of the same question: never mixed in
        vectors = {("big:local:big", "q"): noise, ("mini:local:mini", "q"): vector}
        for target in ("bot", "other"):
            monitor.observe(
                target,
                vectors=vectors,
                retrieval_score=0.8,
                abstained=False,
                groundedness=grounded,
            )
        monitor.record_feedback("bot", 1.0)

    for _ in range(150):
        request(usual, 0.9)
    drift = gauge(registry, "groundgate_drift_distance", target="bot", signal="embedding")
    assert drift is not None and drift < 0.05
    grounded = gauge(registry, "groundgate_drift_distance", target="bot", signal="groundedness")
    assert grounded is not None and grounded < 1e-9
    for _ in range(50):
        request(other, 0.5)
    drift = gauge(registry, "groundgate_drift_distance", target="bot", signal="embedding")
    assert drift is not None and drift > 0.5
    grounded = gauge(registry, "groundgate_drift_distance", target="bot", signal="groundedness")
    assert grounded == pytest.approx(0.4)
    assert gauge(
        registry, "groundgate_drift_mean", target="bot", signal="groundedness", window="current"
    ) == pytest.approx(0.5)
    assert gauge(
        registry, "groundgate_drift_mean", target="bot", signal="groundedness", window="baseline"
    ) == pytest.approx(0.9)
    assert gauge(registry, "groundgate_drift_distance", target="bot", signal="feedback") == 0.0
    assert monitor.targets["bot"].model_key == "mini:local:mini"
    names = {s.labels.get("target") for m in registry.collect() for s in m.samples}
    assert names == {"bot"}


def test_config_names_what_drift_cannot_watch_and_off_watches_nothing() -> None:
    with pytest.raises(ConfigError) as caught:
        build_drift_monitor(
            DriftConfig(targets=["bot", "nope"], embedder="gone"), ["bot"], ["mini"], None
        )
    assert caught.value.problems == [
        "drift.targets[1]: 'nope' is not an app or model",
        "drift.embedder: unknown embedder 'gone'",
    ]
    off = build_drift_monitor(DriftConfig(enabled=False, targets=["nope"]), ["bot"], [], None)
    assert off.targets == {}
    off.record_feedback("bot", 1.0)  # safe to call, does nothing
    with pytest.raises(ValueError, match="min_samples"):
        DriftConfig(window_requests=10, min_samples=20)
