"""The shared statistics: paired bootstrap intervals and the sign-flip significance test."""

from __future__ import annotations

import numpy as np
import pytest

from groundgate.evals.bootstrap import paired_difference


def test_the_interval_contains_a_known_difference_and_calls_it_significant() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0.6, 0.1, 200)
    b = a + 0.05 + rng.normal(0, 0.05, 200)  # the same cases, each 0.05 better plus noise
    result = paired_difference(a.tolist(), b.tolist(), seed=3)
    assert result.diff.low is not None and result.diff.high is not None
    assert result.diff.low < 0.05 < result.diff.high
    assert result.diff.value == pytest.approx(float((b - a).mean()))
    assert result.significant and result.p_value is not None and result.p_value < 0.01


def test_zero_difference_noise_is_not_significant() -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(0, 2, 300).astype(float)
    # Pass/fail scores where 20 cases flip each way: no real difference.
    b = a.copy()
    b[rng.choice(np.flatnonzero(a == 1), 20, replace=False)] = 0.0
    b[rng.choice(np.flatnonzero(a == 0), 20, replace=False)] = 1.0
    result = paired_difference(a.tolist(), b.tolist())
    assert result.diff.low is not None and result.diff.high is not None
    assert result.diff.low < 0 < result.diff.high
    assert result.p_value is not None and result.p_value > 0.5 and not result.significant


def test_a_handful_of_cases_is_never_significant() -> None:
    # The bootstrap alone puts one flipped case out of three at [-1/3, -1/3]...; the exact
    # permutation test says what it is: p = 0.5 for one flip, 0.25 for three of three.
    one = paired_difference([1.0, 1.0, 1.0], [1.0, 0.0, 1.0])
    assert one.p_value == pytest.approx(1.0) and not one.significant
    three = paired_difference([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert three.diff.excludes_zero and three.p_value == pytest.approx(0.25)
    assert not three.significant
    # Seven of seven is beyond chance (p = 2/128).
    seven = paired_difference([1.0] * 7, [0.0] * 7)
    assert seven.p_value == pytest.approx(2 / 128) and seven.significant


def test_results_are_repeatable_with_a_seed() -> None:
    a, b = [0.1, 0.5, 0.9, 0.3] * 10, [0.2, 0.4, 0.9, 0.6] * 10
    assert paired_difference(a, b, seed=5) == paired_difference(a, b, seed=5)
