"""The cost / quality curve math on four prompts whose figures are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from groundgate.routing.tradeoff import (
    Outcomes,
    Prices,
    cheapest_reaching,
    oracle_scores,
    random_reaching,
    threshold_curve,
)

# Each call: 10 tokens in, 10 out. Strong: (10*10 + 10*30) / 1e6 = 400e-6; weak: 12e-6.
STRONG, WEAK = Prices().strong(10, 10), Prices().weak(10, 10)
# Only the strong model gets A; both get B and D; neither gets C.
OUTCOMES = Outcomes(
    weak_correct=np.array([False, True, False, True]),
    strong_correct=np.array([True, True, False, True]),
    weak_cost=np.full(4, WEAK),
    strong_cost=np.full(4, STRONG),
)


def test_prices_per_million_tokens() -> None:
    assert pytest.approx((400e-6, 12e-6)) == (STRONG, WEAK)


def test_router_curve_counts_cost_and_accuracy_per_threshold() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7])  # A first, then C, D, B
    curve = threshold_curve(OUTCOMES, scores)
    assert [p.strong_share for p in curve] == [0, 0.25, 0.5, 0.75, 1]
    assert [p.accuracy for p in curve] == [0.5, 0.75, 0.75, 0.75, 0.75]
    assert curve[1].cost_ratio == pytest.approx((400 + 3 * 12) / 1600)
    assert curve[-1].cost_ratio == pytest.approx(1.0)
    assert curve[1].threshold == 0.5  # strong when score < 0.5: only A
    best = cheapest_reaching(curve, 0.95 * 0.75)
    assert best is curve[1]
    assert cheapest_reaching(curve, 0.8) is None


def test_cascade_pays_every_weak_call() -> None:
    curve = threshold_curve(OUTCOMES, np.array([0.1, 0.9, 0.5, 0.7]), cascade=True)
    assert curve[0].cost_ratio == pytest.approx(4 * 12 / 1600)
    assert curve[1].cost_ratio == pytest.approx((4 * 12 + 400) / 1600)
    assert curve[-1].cost_ratio == pytest.approx((4 * 12 + 1600) / 1600)


def test_tied_scores_move_together_and_the_oracle_picks_the_gain() -> None:
    tied = threshold_curve(OUTCOMES, np.full(4, 0.5))
    assert [(p.strong_share, p.accuracy) for p in tied] == [(0, 0.5), (1, 0.75)]
    best = cheapest_reaching(threshold_curve(OUTCOMES, oracle_scores(OUTCOMES)), 0.7125)
    assert best is not None and (best.strong_share, best.accuracy) == (0.25, 0.75)


def test_random_routing_reaches_the_target_by_interpolation() -> None:
    point = random_reaching(OUTCOMES, 0.7125)  # (0.7125 - 0.5) / 0.25 = 0.85 strong
    assert point is not None
    assert point.strong_share == pytest.approx(0.85)
    assert point.cost_ratio == pytest.approx((0.15 * 48 + 0.85 * 1600) / 1600)
    assert random_reaching(OUTCOMES, 0.8) is None
