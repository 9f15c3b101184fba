"""The statistics every comparison in the harness shares (``eval compare``, the ``eval run``
gate, ``report ab``): bootstrap means and percentile intervals, and the paired difference of
two runs on the same cases with a significance test.

Everything is seeded: the same inputs give the same intervals and p-values, so a gate is
repeatable. Pure numpy; no assumption about the shape of the data (scores are often 0/1,
latency and cost far from normal).

Paired comparison (:func:`paired_difference`): the cases both runs scored are matched, the
per-case differences ``b - a`` resampled with replacement (the paired bootstrap) for the
interval, and the p-value comes from a paired sign-flip permutation test (exact up to
:data:`EXACT_UP_TO` cases that differ, Monte Carlo beyond). A difference is *significant* when
both agree: the interval excludes 0 and ``p < 1 - confidence``. The bootstrap alone is
over-confident on a handful of cases (one flipped case out of one gives an interval of exactly
[-1, -1]); the permutation test is exact there (p = 1), so noise on a small set never counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

RESAMPLES = 2000
CONFIDENCE = 0.95
# Resampled values drawn at once (memory: 8 bytes each); more resamples are drawn in chunks.
_MAX_CELLS = 2_000_000
# Up to this many non-zero differences the permutation test enumerates every sign pattern.
EXACT_UP_TO = 14


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A generator for one independent stream of draws (e.g. per variant and metric)."""
    return np.random.default_rng([seed, *stream])


def resampled_means(values: Floats, rng: np.random.Generator, resamples: int) -> Floats:
    """The means of ``resamples`` bootstrap resamples of ``values`` (empty: none)."""
    n = len(values)
    if n == 0:
        return np.empty(0)
    means = np.empty(resamples)
    step = max(1, _MAX_CELLS // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[picks].mean(axis=1)
    return means


def interval(draws: Floats, confidence: float) -> tuple[float, float]:
    """The percentile interval of ``draws`` at ``confidence`` (two-sided)."""
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean (or a difference of means) with its confidence interval; all None without data."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}

    @property
    def excludes_zero(self) -> bool:
        """The interval lies on one side of 0 (for a difference: the two differ)."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def estimate(value: float | None, draws: Floats, confidence: float, n: int) -> Estimate:
    if value is None or len(draws) == 0:
        return Estimate(None, n=n)
    low, high = interval(draws, confidence)
    return Estimate(float(value), low, high, n)


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """``b - a`` on the cases both runs scored: the means, the difference with its interval,
    the permutation p-value and the verdict."""

    a: float | None
    b: float | None
    diff: Estimate
    p_value: float | None
    confidence: float

    @property
    def n(self) -> int:
        return self.diff.n

    @property
    def significant(self) -> bool:
        return (
            self.p_value is not None
            and self.p_value < 1 - self.confidence
            and self.diff.excludes_zero
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "diff": self.diff.as_dict(),
            "p_value": self.p_value,
            "significant": self.significant,
        }


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    stream: int = 0,
) -> PairedDifference:
    """Compare paired values (``a[i]`` and ``b[i]`` are the same case in two runs).
    ``stream`` picks independent draws for each metric compared under one ``seed``."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} vs {len(b)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    n = len(a)
    if n == 0:
        return PairedDifference(None, None, Estimate(None), None, confidence)
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    diffs = second - first
    observed = float(diffs.mean())
    draws = resampled_means(diffs, rng_for(seed, stream, 1), resamples)
    return PairedDifference(
        float(first.mean()),
        float(second.mean()),
        estimate(observed, draws, confidence, n),
        sign_flip_p_value(diffs, rng_for(seed, stream, 2), resamples),
        confidence,
    )


def sign_flip_p_value(diffs: Floats, rng: np.random.Generator, resamples: int) -> float:
    """Two-sided p-value of a paired permutation test: under "no difference" each case's
    difference is as likely to have either sign, so the observed mean is compared with the
    means of sign-flipped differences. Zero differences carry no sign and are left out."""
    nonzero = diffs[diffs != 0]
    n = len(nonzero)
    if n == 0:
        return 1.0
    observed = abs(float(nonzero.sum()))
    # A small tolerance: a flipped sum equal to the observed one must count as "as extreme".
    tolerance = 1e-9 * max(1.0, observed)
    if n <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        sums = np.abs(signs @ nonzero)
        return float(np.mean(sums >= observed - tolerance))
    extreme = 0
    step = max(1, _MAX_CELLS // n)
    for start in range(0, resamples, step):
        count = min(resamples, start + step) - start
        signs = rng.choice((1.0, -1.0), size=(count, n))
        extreme += int(np.sum(np.abs(signs @ nonzero) >= observed - tolerance))
    # (extreme + 1) / (resamples + 1): a Monte Carlo p-value is never 0.
    return (extreme + 1) / (resamples + 1)
