"""Balancer strategies and DeploymentStats."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from groundgate.reliability.balancer import (
    EWMA_ALPHA,
    Balancer,
    DeploymentStats,
    Strategy,
)

DEPS = ["a", "b", "c", "d"]


def stats(
    *, in_flight: list[int] | None = None, ewma: list[float | None] | None = None
) -> list[DeploymentStats]:
    n = len(in_flight or ewma or DEPS)
    return [
        DeploymentStats(
            in_flight=in_flight[i] if in_flight else 0,
            ewma_latency_ms=ewma[i] if ewma else None,
        )
        for i in range(n)
    ]


# --- DeploymentStats -------------------------------------------------------------------------


def test_stats_count_in_flight() -> None:
    s = DeploymentStats()
    s.started()
    s.started()
    assert s.in_flight == 2
    s.finished(10.0)
    s.finished(None)
    assert s.in_flight == 0
    s.finished(None)  # an unbalanced finish never goes negative
    assert s.in_flight == 0


def test_ewma_starts_at_the_first_sample_and_moves_by_alpha() -> None:
    assert EWMA_ALPHA == 0.2
    s = DeploymentStats()
    s.started()
    s.finished(100.0)
    assert s.ewma_latency_ms == 100.0
    s.started()
    s.finished(200.0)
    assert s.ewma_latency_ms == pytest.approx(0.2 * 200 + 0.8 * 100)  # 120
    s.started()
    s.finished(None)  # a failure does not touch the latency
    assert s.ewma_latency_ms == pytest.approx(120.0)


def test_failures_leave_an_unmeasured_deployment_unmeasured() -> None:
    s = DeploymentStats()
    s.started()
    s.finished(None)
    assert s.ewma_latency_ms is None


# --- strategies ------------------------------------------------------------------------------


def test_ordered_keeps_config_order() -> None:
    b = Balancer(Strategy.ORDERED)
    assert b.order(DEPS, stats(in_flight=[9, 0, 5, 1])) == DEPS


def test_least_in_flight_ascending_with_stable_ties() -> None:
    b = Balancer(Strategy.LEAST_IN_FLIGHT)
    assert b.order(DEPS, stats(in_flight=[3, 1, 0, 1])) == ["c", "b", "d", "a"]
    assert b.order(DEPS, stats(in_flight=[0, 0, 0, 0])) == DEPS


def test_least_in_flight_follows_live_stats() -> None:
    b = Balancer(Strategy.LEAST_IN_FLIGHT)
    live = stats(in_flight=[0, 0, 0, 0])
    live[0].started()
    live[1].started()
    assert b.order(DEPS, live)[0] == "c"
    live[0].finished(5.0)
    assert b.order(DEPS, live) == ["a", "c", "d", "b"]


def test_latency_unknown_first_in_config_order_then_fastest() -> None:
    b = Balancer(Strategy.LATENCY)
    order = b.order(DEPS, stats(ewma=[300.0, None, 100.0, None]))
    assert order == ["b", "d", "c", "a"]
    assert b.order(DEPS, stats(ewma=[50.0, 50.0, 10.0, 50.0])) == ["c", "a", "b", "d"]


def test_weighted_first_pick_follows_the_weights() -> None:
    b = Balancer(Strategy.WEIGHTED, weights=[1.0, 2.0, 7.0], rng=random.Random(1234))
    firsts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    n = 10_000
    for _ in range(n):
        order = b.order(["a", "b", "c"], stats(in_flight=[0, 0, 0]))
        assert sorted(order) == ["a", "b", "c"]
        firsts[order[0]] += 1
        seconds[order[1]] += 1
    assert firsts["a"] / n == pytest.approx(0.1, abs=0.02)
    assert firsts["b"] / n == pytest.approx(0.2, abs=0.02)
    assert firsts["c"] / n == pytest.approx(0.7, abs=0.02)
    # Sampling without replacement: P(b second) = P(a first)*2/9 + P(c first)*2/3 ~ 0.489.
    assert seconds["b"] / n == pytest.approx(0.1 * 2 / 9 + 0.7 * 2 / 3, abs=0.02)
    assert seconds["a"] / n == pytest.approx(0.2 * 1 / 8 + 0.7 * 1 / 3, abs=0.02)


def test_weighted_zero_weights_go_last_in_config_order() -> None:
    b = Balancer(Strategy.WEIGHTED, weights=[0.0, 1.0, 0.0, 3.0], rng=random.Random(7))
    seen_first: set[str] = set()
    for _ in range(500):
        order = b.order(DEPS, stats())
        assert order[2:] == ["a", "c"]
        seen_first.add(order[0])
    assert seen_first == {"b", "d"}


def test_weighted_all_zero_is_config_order() -> None:
    b = Balancer(Strategy.WEIGHTED, weights=[0, 0, 0, 0], rng=random.Random(7))
    assert b.order(DEPS, stats()) == DEPS


def test_weighted_without_weights_is_uniform() -> None:
    b = Balancer(Strategy.WEIGHTED, rng=random.Random(99))
    firsts = Counter(b.order(DEPS, stats())[0] for _ in range(8000))
    for d in DEPS:
        assert firsts[d] / 8000 == pytest.approx(0.25, abs=0.025)


def test_weighted_is_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[list[str]]:
        b = Balancer(Strategy.WEIGHTED, weights=[1, 1, 1, 1], rng=random.Random(seed))
        return [b.order(DEPS, stats()) for _ in range(20)]

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_returns_every_deployment_once(strategy: Strategy) -> None:
    rng = random.Random(3)
    b = Balancer(strategy, weights=[2, 0, 1, 5], rng=rng)
    for _ in range(50):
        live = stats(
            in_flight=[rng.randint(0, 3) for _ in DEPS],
        )
        for s in live:
            if rng.random() < 0.7:
                s.ewma_latency_ms = rng.uniform(1, 500)
        order = b.order(DEPS, live)
        assert sorted(order) == sorted(DEPS)
        assert len(order) == len(DEPS)


def test_empty_and_single() -> None:
    for strategy in Strategy:
        b = Balancer(strategy, weights=[] if strategy is Strategy.WEIGHTED else None)
        assert b.order([], []) == []
        assert Balancer(strategy).order(["x"], [DeploymentStats()]) == ["x"]


def test_strategy_accepts_its_config_string() -> None:
    assert Balancer(Strategy("least_in_flight")).strategy is Strategy.LEAST_IN_FLIGHT


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        Balancer(Strategy.ORDERED).order(DEPS, stats(in_flight=[0, 0]))
    with pytest.raises(ValueError):
        Balancer(Strategy.WEIGHTED, weights=[1, 2]).order(DEPS, stats())


@pytest.mark.parametrize("weights", [[1.0, -1.0], [float("nan")], [float("inf"), 1.0]])
def test_invalid_weights_are_refused(weights: list[float]) -> None:
    with pytest.raises(ValueError):
        Balancer(Strategy.WEIGHTED, weights=weights)
