"""The groundedness scorer measured as shipped: weights and threshold are the module
constants of ``groundgate/guards/grounding.py``, nothing tuned on the file given.

Each row (JSONL ``context``, ``question``, ``answer``, ``label`` 1 = supported) is scored as
the output guard would score it: the answer's sentences against the context's. The positive
class is *supported*: AUC is the chance that a supported answer outscores an unsupported one
(ranks, ties counted half), and precision/recall/F1 are of "score >= threshold" finding the
supported answers. Balanced accuracy (the mean of the two classes' recalls) is what the
published FaithBench figures use. Figures are overall and per ``source``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from groundgate.guards import grounding


def auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mann-Whitney AUC of ``scores`` for the ``labels == 1`` class (average ranks on ties)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) == 1
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def figures(scores: list[float], labels: list[int], threshold: float) -> dict[str, Any]:
    s = np.asarray(scores)
    y = np.asarray(labels) == 1
    predicted = s >= threshold
    tp = int((predicted & y).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else 0.0
    recall = tp / int(y.sum()) if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    specificity = float((~predicted & ~y).sum() / (~y).sum()) if (~y).any() else 0.0
    return {
        "auc": round(auc(s, y.astype(int)), 4),
        "f1": round(f1, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "balanced_accuracy": round((recall + specificity) / 2, 4),
        "rows": len(labels),
        "supported": int(y.sum()),
    }


def evaluate_grounding(path: Path) -> dict[str, Any]:
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    scorer = grounding.GroundednessScorer()
    scores, latencies_ms = [], []
    for row in rows:
        started = time.perf_counter()
        verdict = scorer.score(row["context"], row["answer"], row.get("question") or "")
        latencies_ms.append((time.perf_counter() - started) * 1000)
        scores.append(verdict.score)
    labels = [int(row["label"]) for row in rows]
    report = figures(scores, labels, grounding.THRESHOLD)
    report["threshold"] = grounding.THRESHOLD
    report["positive_class"] = "supported (label 1)"
    report["p50_ms"] = round(float(np.percentile(latencies_ms, 50)), 3)
    report["p99_ms"] = round(float(np.percentile(latencies_ms, 99)), 3)
    report["embedder"] = grounding.EMBEDDER
    sources = sorted({str(row.get("source", "")) for row in rows})
    if len(sources) > 1:
        report["by_source"] = {
            source: figures(
                [x for x, r in zip(scores, rows, strict=True) if r.get("source", "") == source],
                [y for y, r in zip(labels, rows, strict=True) if r.get("source", "") == source],
                grounding.THRESHOLD,
            )
            for source in sources
        }
    return report
