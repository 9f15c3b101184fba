"""Drift's cost on the request path: CPU per finished request of the record stage's drift feed
(``groundgate.pipeline.drift_feed.feed_drift``), in process, on requests as the pipeline
leaves them.

    python bench/drift.py [--requests 200000] [--data ../shared/data] [--json OUT]

Cases: a plain model's request (no vector, no retrieval: only the lookup and the clock), a
grounded app's request (a 384-dimension question vector, the retrieval top score, abstention
and groundedness), and the same with windows of 8 (a window closes and sets its gauges every
8 requests: the worst case for the gauges). Drift off is the record stage's ``None`` check.
Output: ``{"us_per_request": {CASE: microseconds}, "requests": N}`` (CPU time, best of 5).

``--data`` (a folder with ``qqp/dev.jsonl``, ``squad_v2/dev_subset.json`` and
``scifact/queries.jsonl``) also measures the question-embedding distance the default bound
(``drift.bounds.embedding``) was chosen from, with the semantic cache's embedder: windows of
Quora questions against a baseline of four windows of them (the same mix: the noise), and
windows with a share of SQuAD questions or SciFact claims mixed in (a shift), debiased
(``VectorSums.distance``) and plain (the cosine of the two centroids). Output ``"bound"``:
``{WINDOW: {"same_mix": {"mean", "sd", "max"}, "plain_same_mix_mean", "shift": {...}}}``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from groundgate.config import AppConfig
from groundgate.config_drift import DriftConfig
from groundgate.guards.decision import GuardReport
from groundgate.observe.drift import DriftMonitor
from groundgate.observe.drift_metrics import DriftMetrics
from groundgate.observe.drift_windows import VectorSums
from groundgate.observe.trace import Trace
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.drift_feed import feed_drift
from groundgate.pipeline.stage import Outcome
from groundgate.providers.base import ChatCall


def request(target: str, *, grounded: bool) -> RequestContext:
    trace = Trace(id="t", tenant="default", endpoint="ask", model=target)
    ctx = RequestContext(
        trace=trace, model=target, call=ChatCall(messages=[]), deadline=time.monotonic() + 60
    )
    if grounded:
        ctx.app, ctx.app_name = AppConfig(knowledge_base="kb"), target
        vector = np.random.default_rng(0).normal(size=384).astype(np.float32)
        ctx.vectors[("all-minilm-l6-v2-int8:local:all-MiniLM-L6-v2-int8", "q")] = vector / float(
            np.linalg.norm(vector)
        )
        trace.attrs["retrieval"] = {
            "passages": [{"chunk_id": f"c{i}", "score": 1.0 - i / 10} for i in range(5)]
        }
        ctx.guards = GuardReport(groundedness=0.9)
    return ctx


def per_request_us(monitor: DriftMonitor | None, ctx: RequestContext, n: int) -> float:
    outcome = Outcome()
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            if monitor is not None:  # what the record stage does
                feed_drift(monitor, ctx, outcome)
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def questions(data: Path) -> dict[str, list[str]]:
    def jsonl(path: Path, key: str) -> list[str]:
        return [json.loads(line)[key] for line in path.read_text("utf-8").splitlines()]

    squad = json.loads((data / "squad_v2" / "dev_subset.json").read_text("utf-8"))["data"]
    found = {
        "qqp": jsonl(data / "qqp" / "dev.jsonl", "text_a"),
        "squad": [q["question"] for a in squad for p in a["paragraphs"] for q in p["qas"]],
        "scifact": jsonl(data / "scifact" / "queries.jsonl", "text"),
    }
    rng = random.Random(7)
    for name, texts in found.items():
        unique = list(dict.fromkeys(texts))
        rng.shuffle(unique)  # SQuAD comes article by article: a real drift of its own
        found[name] = unique[:6000]
    return found


def sums(vectors: np.ndarray) -> VectorSums:
    out = VectorSums(vectors.shape[1])
    for v in vectors:
        out.add(v)
    return out


def plain(a: VectorSums, b: VectorSums) -> float:
    return float(1 - a.total @ b.total / np.linalg.norm(a.total) / np.linalg.norm(b.total))


def measure_bound(data: Path) -> dict[str, object]:
    from groundgate.providers.local.models import process_models

    embedder = process_models().embedder("all-MiniLM-L6-v2-int8")
    embedded = {
        name: np.vstack(
            [np.asarray(embedder.embed(texts[i : i + 64])) for i in range(0, len(texts), 64)]
        ).astype(np.float64)
        for name, texts in questions(data).items()
    }
    usual = embedded["qqp"]
    out: dict[str, object] = {}
    for window in (100, 200, 500):
        baseline, rest = sums(usual[: 4 * window]), usual[4 * window :]
        windows = [rest[i : i + window] for i in range(0, len(rest) - window + 1, window)]
        same = [sums(w).distance(baseline) for w in windows]
        shift = {}
        for other in ("squad", "scifact"):
            for share in (0.1, 0.2, 0.3, 1.0):
                k = int(window * share)
                mixed = sums(np.vstack([rest[: window - k], embedded[other][:k]]))
                shift[f"{other}_{int(share * 100)}%"] = round(mixed.distance(baseline), 4)
        out[str(window)] = {
            "same_mix": {
                "mean": round(float(np.mean(same)), 4),
                "sd": round(float(np.std(same)), 4),
                "max": round(max(same), 4),
                "windows": len(same),
            },
            "plain_same_mix_mean": round(
                float(np.mean([plain(sums(w), baseline) for w in windows])), 4
            ),
            "shift": shift,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--data", type=Path, help="also measure the embedding bound")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    n = args.requests

    def monitor(**config: int) -> DriftMonitor:
        return DriftMonitor(DriftConfig(**config), ["bot", "m"], DriftMetrics(CollectorRegistry()))

    results = {
        "off": per_request_us(None, request("bot", grounded=True), n),
        "model": per_request_us(monitor(), request("m", grounded=False), n),
        "app": per_request_us(monitor(), request("bot", grounded=True), n),
        "app_windows_of_8": per_request_us(
            monitor(window_requests=8, min_samples=8, baseline_windows=1),
            request("bot", grounded=True),
            n,
        ),
    }
    out: dict[str, object] = {
        "us_per_request": {k: round(v, 3) for k, v in results.items()},
        "requests": n,
    }
    if args.data:
        out["bound"] = measure_bound(args.data)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
