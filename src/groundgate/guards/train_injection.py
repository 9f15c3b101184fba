"""Train the prompt-injection classifier (``injection.py``) and write its model file.

    python -m groundgate.guards.train_injection \\
        --data ../shared/data/prompt_injections/train.jsonl \\
        --out src/groundgate/guards/data/injection_v1.json [--seed 0] [--split-dir DIR]

Input: JSONL rows with ``text`` and ``label`` (1 = injection). Deterministic for a given
input and seed: the only randomness is the split, drawn from ``numpy.random.default_rng(seed)``,
and the fit is full-batch gradient descent from zero weights for a fixed number of steps.

1. A stratified 20% of the rows is held out (per label, a seeded permutation).
2. Features per text: the int8 MiniLM embedding of ``embedding_text(text)`` (the semantic
   cache's vector) and the 0/1 rule families of ``injection_rules``; standardised with the
   training part's mean and deviation, which are then folded into the weights.
3. Logistic regression, classes weighted to equal total weight, L2 penalty ``L2``.
4. The threshold is the lowest that keeps the false-positive rate on the held-out part at or
   below ``MAX_FPR``: above the (k+1)-th highest benign score, k = floor(5% of benign),
   halfway to the next held-out score.
   The held-out figures at that threshold go into the file's ``meta``.

``--split-dir`` also writes the two parts (``train.jsonl``, ``holdout.jsonl``) so that the
benchmark (``bench/guards.py --injection DIR/holdout.jsonl``) can score the held-out part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from groundgate.guards.injection import InjectionModel, embedding_text
from groundgate.guards.injection_rules import RULE_NAMES, rule_vector

HOLDOUT_SHARE = 0.2
MAX_FPR = 0.05
L2 = 0.05  # penalty per weight, relative to the mean (weighted) loss
STEPS = 3000
LEARNING_RATE = 0.5
# Weights are rounded before the threshold is chosen, so the shipped file is what was measured.
DECIMALS = 7

Floats = npt.NDArray[np.float64]
Embed = Callable[[list[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Row:
    text: str
    label: int


def read_rows(paths: Sequence[Path]) -> list[Row]:
    rows: list[Row] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                rows.append(Row(str(item["text"]), int(item["label"])))
    return rows


def stratified_split(labels: Sequence[int], share: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices), both sorted; ``share`` of each label held out."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        order = rng.permutation(len(members))
        held.extend(members[j] for j in order[: round(share * len(members))])
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def features(texts: Sequence[str], embed: Embed) -> Floats:
    """[embedding, rule vector] per text (rows in order)."""
    vectors = np.asarray(embed([embedding_text(t) for t in texts]), dtype=np.float64)
    rules = np.vstack([rule_vector(t) for t in texts])
    return np.hstack([vectors, rules])


def fit_logistic(x: Floats, y: npt.NDArray[np.int_]) -> tuple[Floats, float]:
    """Class-balanced, L2-penalised logistic regression by full-batch gradient descent;
    returns (weights, bias) over ``x`` as given."""
    n, d = x.shape
    positives = max(int(y.sum()), 1)
    sample_weight = np.where(y == 1, n / (2 * positives), n / (2 * max(n - positives, 1)))
    sample_weight = sample_weight / sample_weight.sum()
    w = np.zeros(d)
    b = 0.0
    for _ in range(STEPS):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        error = (p - y) * sample_weight
        w -= LEARNING_RATE * (x.T @ error + L2 * w)
        b -= LEARNING_RATE * float(error.sum())
    return w, b


def probabilities(x: Floats, weights: Floats, bias: float) -> Floats:
    result: Floats = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
    return result


def choose_threshold(scores: Floats, labels: npt.NDArray[np.int_], max_fpr: float) -> float:
    """The lowest threshold (``score >= t`` flags) with at most ``max_fpr`` of benign flagged."""
    benign = np.sort(scores[labels == 0])[::-1]
    if benign.size == 0:
        return 0.5
    allowed = math.floor(max_fpr * benign.size)
    if allowed >= benign.size:
        return 0.0
    # Halfway to the next higher held-out score, not just above the benign one: a sum taken
    # in another order (the classifier's) must not tip that benign text over.
    boundary = float(benign[allowed])
    above = scores[scores > boundary]
    return (boundary + float(above.min())) / 2 if above.size else float(np.nextafter(boundary, 1))


def rates(scores: Floats, labels: npt.NDArray[np.int_], threshold: float) -> dict[str, float]:
    flagged = scores >= threshold
    tp = int((flagged & (labels == 1)).sum())
    fp = int((flagged & (labels == 0)).sum())
    fn = int((~flagged & (labels == 1)).sum())
    tn = int((~flagged & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fpr, 4),
    }


def train(
    rows: Sequence[Row], embed: Embed, *, embedder: str, seed: int = 0, sources: str = ""
) -> tuple[InjectionModel, list[int], list[int]]:
    """The model, and the train / held-out row indices it was fitted and thresholded on."""
    labels = np.array([r.label for r in rows], dtype=np.int_)
    train_idx, held_idx = stratified_split(list(labels), HOLDOUT_SHARE, seed)
    x = features([r.text for r in rows], embed)
    x_train = x[train_idx]
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-9] = 1.0  # a rule never seen in training: its column stays zero
    w, b = fit_logistic((x_train - mean) / std, labels[train_idx])
    # Fold the standardisation in: ((x - mean) / std) @ w + b = x @ (w / std) + (b - ...).
    weights = np.round(w / std, DECIMALS)
    bias = round(b - float((mean / std) @ w), DECIMALS)
    held_scores = probabilities(x[held_idx], weights, bias)
    threshold = choose_threshold(held_scores, labels[held_idx], MAX_FPR)
    meta = {
        "sources": sources,
        "seed": seed,
        "rows": len(rows),
        "train_rows": len(train_idx),
        "holdout_rows": len(held_idx),
        "holdout_injections": int(labels[held_idx].sum()),
        "max_fpr": MAX_FPR,
        "l2": L2,
        "steps": STEPS,
        "holdout": rates(held_scores, labels[held_idx], threshold),
        "train": rates(probabilities(x_train, weights, bias), labels[train_idx], threshold),
    }
    model = InjectionModel(
        embedder=embedder,
        dimension=x.shape[1] - len(RULE_NAMES),
        rule_names=RULE_NAMES,
        weights=weights,
        bias=bias,
        threshold=threshold,
        meta=meta,
    )
    return model, train_idx, held_idx


def _write_jsonl(path: Path, rows: Sequence[Row]) -> None:
    lines = (json.dumps({"text": r.text, "label": r.label}, ensure_ascii=False) for r in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="JSONL text/label")
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-dir", type=Path, help="also write train.jsonl, holdout.jsonl")
    args = parser.parse_args(argv)

    from groundgate.providers.local.models import INT8_EMBEDDER, process_models

    embedder = process_models().embedder(INT8_EMBEDDER)
    rows = read_rows(args.data)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in args.data)).hexdigest()[:16]
    sources = ", ".join(p.name for p in args.data) + f" (sha256 {digest})"
    model, train_idx, held_idx = train(
        rows, embedder.embed, embedder=embedder.model_id, seed=args.seed, sources=sources
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
    if args.split_dir is not None:
        args.split_dir.mkdir(parents=True, exist_ok=True)
        _write_jsonl(args.split_dir / "train.jsonl", [rows[i] for i in train_idx])
        _write_jsonl(args.split_dir / "holdout.jsonl", [rows[i] for i in held_idx])
    print(json.dumps({"threshold": model.threshold, **model.meta}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
