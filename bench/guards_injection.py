"""The prompt-injection guard measured as shipped: weights and threshold from
``groundgate.guards.injection.SHIPPED_MODEL``, nothing tuned on the files given.

Each text is scored alone, as a request would be: its embedding (the semantic cache's int8
MiniLM of ``embedding_text(text)``) and then the classifier; the latency of each text covers
both. Precision, recall, F1 and false-positive rate are over all files together, and per file
under ``by_file``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from groundgate.guards.injection import embedding_text, shipped_classifier
from groundgate.providers.local.models import process_models


def read_labelled(path: Path) -> list[tuple[str, int]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append((str(item["text"]), int(item["label"])))
    return rows


def _figures(flags: list[bool], labels: list[int]) -> dict[str, float]:
    tp = sum(f and y == 1 for f, y in zip(flags, labels, strict=True))
    fp = sum(f and y == 0 for f, y in zip(flags, labels, strict=True))
    positives = sum(labels)
    negatives = len(labels) - positives
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fp / negatives if negatives else 0.0, 4),
        "rows": len(labels),
        "injections": positives,
    }


def evaluate_injection(files: list[Path]) -> dict[str, Any]:
    """``{"precision", "recall", "f1", "fpr", "p50_ms", "p99_ms", ...}`` over ``files``."""
    classifier = shipped_classifier()
    embedder = process_models().embedder(classifier.embedder)
    embedder.embed([embedding_text("warm up the model")])
    all_flags: list[bool] = []
    all_labels: list[int] = []
    latencies_ms: list[float] = []
    by_file: dict[str, dict[str, float]] = {}
    for path in files:
        rows = read_labelled(path)
        flags = []
        for text, _ in rows:
            started = time.perf_counter()
            vector = embedder.embed([embedding_text(text)])[0]
            verdict = classifier.score(text, vector)
            latencies_ms.append((time.perf_counter() - started) * 1000)
            flags.append(verdict.flagged)
        labels = [label for _, label in rows]
        by_file[path.name] = _figures(flags, labels)
        all_flags += flags
        all_labels += labels
    result: dict[str, Any] = _figures(all_flags, all_labels)
    result["p50_ms"] = round(float(np.percentile(latencies_ms, 50)), 3)
    result["p99_ms"] = round(float(np.percentile(latencies_ms, 99)), 3)
    result["threshold"] = classifier.threshold
    result["embedder"] = classifier.embedder
    result["by_file"] = by_file
    return result
