"""Train the learned router (``learned.py``) and the cascade's answer verifier
(``verifier.py``) from routing data, and write their model files.

The shipped ``data/router_v1.json`` and ``data/verifier_v1.json`` are made, from the
repository root, by::

    groundgate route train --data ../shared/data/routing

Data: RouteLLM's evaluation files (``dataset.py`` describes the layout): MMLU (14,037 questions
after dropping the 5 RouteLLM marks as contaminated) and GSM8K (1,055), each with whether
Mixtral-8x7B-Instruct (the weak, cheap model) and GPT-4-1106 (the strong one) answered it
correctly; GSM8K also has their answers. Apache-2.0 (the questions MIT): the weights may ship.

Deterministic for given data, holdout share and seed (the same bytes out):

1. Held out: the prompts with ``is_held_out(prompt, holdout, seed)`` (a hash of the prompt,
   ~20%), never trained on; the thresholds and the figures in each file's ``meta`` are
   measured on them. ``bench/routing.py --split held-out`` evaluates the same prompts.
2. Router: the int8 MiniLM embedding of ``embedding_text(prompt)`` and ``request_features``;
   label: the weak model's answer is as good as the strong one's (it was right, or the
   strong one was wrong too: sending such a prompt up buys nothing). Logistic regression
   (``logistic.fit``, L2 ``ROUTER_L2``), each dataset weighing the same in total (so GSM8K's
   1k prompts count as much as MMLU's 14k). Trained on "the weak model was right" alone (L2
   0.01), the router's held-out MMLU curve fell below random routing at 18 of its 102 points
   (strong shares up to ~0.2, by at most 0.3 accuracy points); with this label and L2 0.03 it
   is at or above random at every point, at the price of a dearer 95% point on MMLU (cost
   ratio 0.66 against 0.60; GSM8K 0.51 against 0.55).
3. Verifier: ``verifier_features`` of the weak model's GSM8K answers; label: that answer was
   right; L2 ``VERIFIER_L2``. A cut-off or refused answer never occurs there, so those two
   features get fixed weights (``VERIFIER_PRIORS``) instead of the fit's zero.
4. Thresholds: the cheapest point on the held-out prompts keeping 95% of the strong model's
   accuracy (router: all held-out prompts; verifier: held-out GSM8K as a cascade), costs from
   the default prices of ``tradeoff.Prices`` and tokens estimated from the texts (MMLU has no
   answers: ``MMLU_OUTPUT_TOKENS`` each).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from groundgate.guards.injection import embedding_text
from groundgate.routing.dataset import Row, is_held_out, read_all
from groundgate.routing.embed_cache import embed_cached
from groundgate.routing.features import estimate_tokens, request_features
from groundgate.routing.learned import SHIPPED_ROUTER, LearnedRouter
from groundgate.routing.logistic import auc, fit, probabilities
from groundgate.routing.tradeoff import (
    QUALITY_TARGET,
    Outcomes,
    Point,
    Prices,
    cheapest_reaching,
    threshold_curve,
)
from groundgate.routing.verifier import (
    SHIPPED_VERIFIER,
    VERIFIER_FEATURE_NAMES,
    AnswerVerifier,
    verifier_features,
)

HOLDOUT_SHARE = 0.2
ROUTER_L2 = 0.03
VERIFIER_L2 = 0.05
# Log-odds given to verifier features the training answers never show (GSM8K's answers are
# never cut off and never refuse), so the shipped verifier still escalates on them: a cut-off
# or refused answer is taken to be wrong about 98 times in 100 when all else looks right.
VERIFIER_PRIORS = {"truncated": -4.0, "refusal": -4.0}
# MMLU's files hold no answers; the prompt ends "Answer:" and asks for one letter.
MMLU_OUTPUT_TOKENS = 1
Floats = npt.NDArray[np.float64]
Embed = Callable[[list[str]], npt.ArrayLike]


@dataclass(frozen=True)
class Trained:
    router: LearnedRouter
    verifier: AnswerVerifier | None  # None when the data hold no answers (no GSM8K)


def outcomes(
    rows: Sequence[Row], prices: Prices = Prices(), missing_output_tokens: int = MMLU_OUTPUT_TOKENS
) -> Outcomes:
    """Correctness and per-call costs of ``rows``; tokens estimated from the texts (a row
    without answers, MMLU's, is charged ``missing_output_tokens`` per call)."""

    def output_tokens(response: str | None) -> int:
        return missing_output_tokens if response is None else estimate_tokens(response)

    inputs = [estimate_tokens(r.prompt) for r in rows]
    return Outcomes(
        np.array([r.weak_correct for r in rows], dtype=np.bool_),
        np.array([r.strong_correct for r in rows], dtype=np.bool_),
        np.array(
            [
                prices.weak(i, output_tokens(r.weak_response))
                for i, r in zip(inputs, rows, strict=True)
            ]
        ),
        np.array(
            [
                prices.strong(i, output_tokens(r.strong_response))
                for i, r in zip(inputs, rows, strict=True)
            ]
        ),
    )


def _labels(rows: Sequence[Row]) -> npt.NDArray[np.int_]:
    return np.array([int(r.weak_correct) for r in rows], dtype=np.int_)


def _router_labels(rows: Sequence[Row]) -> npt.NDArray[np.int_]:
    # The cheap answer is as good as the strong one: right, or the strong one wrong too
    # (sending such a prompt up buys nothing).
    return np.array([int(r.weak_correct or not r.strong_correct) for r in rows], dtype=np.int_)


def _digest(rows: Sequence[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(
            f"{r.dataset}\x00{r.prompt}\x00{r.weak_correct}\x00{r.strong_correct}\x00"
            f"{r.weak_response}\x00".encode()
        )
    return h.hexdigest()[:16]


def _at_target(points: list[Point], o: Outcomes) -> dict[str, float] | None:
    best = cheapest_reaching(points, QUALITY_TARGET * o.strong_accuracy)
    if best is None:
        return None
    return {
        "strong_share": round(best.strong_share, 4),
        "cost_ratio": round(best.cost_ratio, 4),
        "accuracy": round(best.accuracy, 4),
        "threshold": round(best.threshold, 6),
    }


def _threshold(points: list[Point], o: Outcomes) -> float:
    best = cheapest_reaching(points, QUALITY_TARGET * o.strong_accuracy)
    return round(best.threshold if best is not None else 1.0, 6)


def _split(rows: Sequence[Row], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    held = [is_held_out(r.prompt, holdout, seed) for r in rows]
    train = [i for i, h in enumerate(held) if not h]
    if not train or all(not h for h in held):
        raise ValueError(f"{len(rows)} rows leave no training or no held-out part")
    return train, [i for i, h in enumerate(held) if h]


def _check_labels(rows: Sequence[Row], what: str) -> None:
    if len({r.weak_correct for r in rows}) < 2:
        raise ValueError(f"{what}: the weak model is right on all or none of them")


def train_router(
    rows: Sequence[Row], vectors: Floats, *, embedder: str, holdout: float, seed: int
) -> LearnedRouter:
    train_idx, held_idx = _split(rows, holdout, seed)
    _check_labels([rows[i] for i in train_idx], "training prompts")
    x = np.hstack([vectors, np.vstack([request_features(r.prompt) for r in rows])])
    y = _router_labels(rows)
    datasets = [r.dataset for r in rows]
    sizes = {d: sum(1 for i in train_idx if datasets[i] == d) for d in set(datasets)}
    weight = np.array([1.0 / sizes[datasets[i]] for i in train_idx])
    weights, bias = fit(x[train_idx], y[train_idx], weight, ROUTER_L2)
    scores = probabilities(x, weights, bias)
    held_rows = [rows[i] for i in held_idx]
    o = outcomes(held_rows)
    held_curve = threshold_curve(o, scores[held_idx])
    per_dataset: dict[str, Any] = {}
    for name in sorted(set(datasets)):
        part = [i for i in held_idx if datasets[i] == name]
        if part:
            po = outcomes([rows[i] for i in part])
            per_dataset[name] = {
                "rows": len(part),
                "auc": round(auc(scores[part], y[part]), 4),
                "at_95": _at_target(threshold_curve(po, scores[part]), po),
            }
    meta = {
        "data_sha256": _digest(rows),
        "rows": len(rows),
        "train_rows": len(train_idx),
        "holdout_rows": len(held_idx),
        "holdout": holdout,
        "seed": seed,
        "split": "held out when sha256(f'{seed}\\0{prompt}')[:8] / 2**64 < holdout",
        "label": "weak model (Mixtral-8x7B-Instruct) correct, or the strong one wrong too",
        "l2": ROUTER_L2,
        "balance": "datasets",
        "train_auc": round(auc(scores[train_idx], y[train_idx]), 4),
        "holdout_auc": round(auc(scores[held_idx], y[held_idx]), 4),
        "holdout_at_95": _at_target(held_curve, o),
        "holdout_by_dataset": per_dataset,
        "quantiles_of": "training prompts",
        "license": "trained on RouteLLM evaluation data (Apache-2.0; MMLU, GSM8K MIT)",
    }
    quantiles = np.percentile(scores[train_idx], np.arange(101))
    return LearnedRouter(
        embedder=embedder,
        dimension=vectors.shape[1],
        weights=weights,
        bias=bias,
        threshold=_threshold(held_curve, o),
        quantiles=tuple(round(float(q), 6) for q in quantiles),
        meta=meta,
    )


def train_verifier(rows: Sequence[Row], *, holdout: float, seed: int) -> AnswerVerifier:
    """From the rows with a weak answer (GSM8K)."""
    answered = [r for r in rows if r.weak_response is not None]
    train_idx, held_idx = _split(answered, holdout, seed)
    _check_labels([answered[i] for i in train_idx], "training answers")
    x = np.vstack([verifier_features(r.prompt, r.weak_response or "") for r in answered])
    y = _labels(answered)
    weights, bias = fit(x[train_idx], y[train_idx], np.ones(len(train_idx)), VERIFIER_L2)
    priors = {}
    for name, prior in VERIFIER_PRIORS.items():
        column = VERIFIER_FEATURE_NAMES.index(name)
        if np.ptp(x[train_idx, column]) == 0:  # never seen varying: the fit could not weigh it
            weights[column] = prior
            priors[name] = prior
    scores = probabilities(x, weights, bias)
    o = outcomes([answered[i] for i in held_idx])
    held_curve = threshold_curve(o, scores[held_idx], cascade=True)
    meta = {
        "data_sha256": _digest(answered),
        "rows": len(answered),
        "train_rows": len(train_idx),
        "holdout_rows": len(held_idx),
        "holdout": holdout,
        "seed": seed,
        "label": "the weak model's (Mixtral-8x7B-Instruct) GSM8K answer is correct",
        "l2": VERIFIER_L2,
        "prior_weights": priors,
        "train_auc": round(auc(scores[train_idx], y[train_idx]), 4),
        "holdout_auc": round(auc(scores[held_idx], y[held_idx]), 4),
        "holdout_cascade_at_95": _at_target(held_curve, o),
        "license": "trained on RouteLLM evaluation data (Apache-2.0; GSM8K MIT)",
    }
    return AnswerVerifier(
        weights=weights, bias=bias, threshold=_threshold(held_curve, o), meta=meta
    )


def train(
    data: Path,
    *,
    embed: Embed,
    embedder: str,
    holdout: float = HOLDOUT_SHARE,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> Trained:
    """Read ``data`` (a routing data folder), embed the prompts (through the cache in
    ``cache_dir``), fit both models. ValueError when the data cannot train them."""
    found = read_all(data)
    if not found:
        raise ValueError(f"no gsm8k/gsm8k_responses.csv or mmlu/responses/*.csv under {data}")
    rows = [r for name in sorted(found) for r in found[name]]
    vectors = embed_cached(
        [embedding_text(r.prompt) for r in rows], embed, embedder=embedder, cache_dir=cache_dir
    ).astype(np.float64)
    router = train_router(rows, vectors, embedder=embedder, holdout=holdout, seed=seed)
    verifier = None
    if any(r.weak_response is not None for r in rows):
        verifier = train_verifier(rows, holdout=holdout, seed=seed)
    return Trained(router, verifier)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


# The recipe's outputs, relative to the repository root (``groundgate route train``'s defaults).
RECIPE_ROUTER_OUT = Path("src/groundgate/routing/data") / SHIPPED_ROUTER.name
RECIPE_VERIFIER_OUT = Path("src/groundgate/routing/data") / SHIPPED_VERIFIER.name
