"""The logistic regression behind the learned router and the answer verifier: fitted on
standardised columns with the project's own full-batch gradient descent
(``guards.train_injection.fit_logistic``), then folded back so serving is one dot product over
the raw values."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
# Weights are rounded before anything is measured on them, so a file is what was measured and
# the same data give the same bytes.
DECIMALS = 7


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def probabilities(x: Floats, weights: Floats, bias: float) -> Floats:
    result: Floats = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
    return result


def fit(
    x: Floats, y: npt.NDArray[np.int_], sample_weight: Floats, l2: float
) -> tuple[Floats, float]:
    """(weights, bias) over the raw columns of ``x``; ``sample_weight`` is normalised here.
    A column constant in ``x`` gets weight 0."""
    from groundgate.guards.train_injection import fit_logistic

    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = np.inf  # constant column: (x - mean) / inf = 0, and so its weight
    weight = sample_weight / sample_weight.sum()
    w, b = fit_logistic((x - mean) / std, y, weight, l2)
    weights = np.round(w / std, DECIMALS)
    bias = round(b - float((mean / std) @ w), DECIMALS)
    return weights, bias


def auc(scores: Floats, labels: npt.NDArray[np.int_]) -> float:
    """Area under the ROC curve (ties count half): how well ``scores`` rank positives first."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    i = 0
    while i < scores.size:  # average ranks over ties
        j = i
        while j + 1 < scores.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float(
        (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )
