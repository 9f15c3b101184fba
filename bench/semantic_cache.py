"""Semantic-cache precision and recall on question pairs (QQP by default).

    python bench/semantic_cache.py [--data FILE] [--limit N] [--embedder NAME] [--json OUT]

Each pair stores ``text_a`` in the cache and asks ``text_b``, both through
``normalize_question`` as the cache would; the cosine similarity of their vectors (from the
cache's default embedder, ``[cache] embedder``, or ``--embedder``) decides a hit at each
threshold 0.70..0.995, with and without the false-hit guard. Precision
is the share of hits whose pair is a true duplicate (label 1), recall the share of
duplicates that hit. The default threshold is the lowest one where precision with the guard
reaches 0.95. Each guard rule (enabled or candidate) is measured alone and left out.

Vectors are kept in ``.bench-cache/`` under a hash of the data file and of the normalised
texts, so a second run does not embed again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from groundgate.cache.guard import CANDIDATE_RULES, RULES, Rule
from groundgate.cache.guard_text import features
from groundgate.cache.normalize import normalize_question
from groundgate.cache.semantic import DEFAULT_THRESHOLD, SemanticMatcher
from groundgate.config_cache import CacheConfig
from groundgate.providers.local.embedder import MiniLMEmbedder

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "qqp" / "dev.jsonl"
DEFAULT_PARAPHRASES = ROOT.parent / "shared" / "data" / "qqp" / "paraphrase_pairs.json"
CACHE_DIR = ROOT / ".bench-cache"
# 0.70 .. 0.95 by 0.01, then by 0.005 up to 0.995, where the default is chosen.
THRESHOLDS = [round(0.70 + 0.01 * i, 2) for i in range(25)] + [
    round(0.95 + 0.005 * i, 3) for i in range(10)
]
# The embedders this bench can run: the two local MiniLM variants, by their config names.
EMBEDDERS = {"all-minilm-l6-v2": False, "all-minilm-l6-v2-int8": True}  # name -> int8
TARGET_PRECISION = 0.95
# Rules are judged where there are enough pairs to judge them: all pairs at or above this.
JUDGE_FROM = 0.90
Mask = NDArray[np.bool_]
# How many texts each embedding step had to embed this run (0: all came from .bench-cache/).
EMBEDDED: dict[str, int] = {}


@dataclass
class Pairs:
    stored: list[str]  # text_a, as the cache keeps it
    asked: list[str]  # text_b
    labels: NDArray[np.int64]


def load_pairs(path: Path, limit: int | None) -> Pairs:
    stored, asked, labels = [], [], []
    with path.open() as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                stored.append(row["text_a"])
                asked.append(row["text_b"])
                labels.append(int(row["label"]))
            if limit and len(labels) >= limit:
                break
    return Pairs(stored, asked, np.array(labels, dtype=np.int64))


def embed_unique(
    texts: list[str], cache_key: str, label: str, embedder_name: str
) -> dict[str, NDArray[np.float32]]:
    """Vectors of the distinct texts, from ``.bench-cache/`` when this exact set was seen."""
    unique = sorted(set(texts))
    digest = hashlib.sha256("\n".join(unique).encode()).hexdigest()[:12]
    # The float32 model's files keep their old names (no suffix), so they are reused.
    variant = "" if embedder_name == "all-minilm-l6-v2" else f"{embedder_name}-"
    path = CACHE_DIR / f"semantic_cache-{variant}{cache_key[:16]}-{digest}.npy"
    EMBEDDED[label] = 0 if path.is_file() else len(unique)
    if path.is_file():
        vectors = np.load(path)
    else:
        embedder = MiniLMEmbedder(
            intra_op_threads=os.cpu_count() or 1, batch_size=16, int8=EMBEDDERS[embedder_name]
        )
        # Embedding in length order keeps each batch's padding small.
        order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
        vectors = np.empty((len(unique), embedder.dimension), dtype=np.float32)
        chunk = 512
        with Progress(transient=True) as bar:
            task = bar.add_task(f"embedding {len(unique):,} {label}", total=len(unique))
            for start in range(0, len(order), chunk):
                idx = order[start : start + chunk]
                vectors[idx] = embedder.embed([unique[i] for i in idx])
                bar.advance(task, len(idx))
        CACHE_DIR.mkdir(exist_ok=True)
        np.save(path, vectors)
    return dict(zip(unique, vectors, strict=True))


def similarities(
    stored: list[str], asked: list[str], cache_key: str, label: str, embedder_name: str
) -> NDArray[np.float64]:
    keys_a = [normalize_question(t) for t in stored]
    keys_b = [normalize_question(t) for t in asked]
    vectors = embed_unique(keys_a + keys_b, cache_key, label, embedder_name)
    a = np.stack([vectors[k] for k in keys_a])
    b = np.stack([vectors[k] for k in keys_b])
    # float64, so that ``sims >= t`` compares exactly as SemanticMatcher does.
    sims: NDArray[np.float64] = (a * b).sum(axis=1).astype(np.float64)
    return sims


def rule_blocks(pairs: Pairs, candidates: Mask, rules: list[Rule]) -> dict[str, Mask]:
    """For each rule, which pairs it vetoes (only pairs in ``candidates`` are checked)."""
    blocks = {rule.name: np.zeros(len(pairs.labels), dtype=bool) for rule in rules}
    indices = np.flatnonzero(candidates)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"guard rules on {len(indices):,} pairs", total=len(indices))
        for i in indices:
            q, c = features(pairs.asked[i]), features(pairs.stored[i])
            for rule in rules:
                if rule.check(q, c) is not None:
                    blocks[rule.name][i] = True
            bar.advance(task)
    return blocks


def precision_recall(hits: Mask, labels: NDArray[np.int64]) -> tuple[float | None, float, int]:
    true_hits = int((hits & (labels == 1)).sum())
    count = int(hits.sum())
    duplicates = max(int((labels == 1).sum()), 1)
    return (true_hits / count if count else None), true_hits / duplicates, count


def rule_effect(
    above: Mask, blocked: Mask, others: Mask, labels: NDArray[np.int64]
) -> dict[str, Any]:
    """A rule at one threshold: what it blocks (all, and only it among the enabled rules),
    and precision/recall alone and in the guard (for an enabled rule: the guard without it;
    for a candidate: the guard plus it)."""
    hit_blocked, marginal = above & blocked, above & blocked & ~others
    alone_p, alone_r, _ = precision_recall(above & ~blocked, labels)
    without_p, without_r, _ = precision_recall(above & ~others, labels)
    with_p, with_r, _ = precision_recall(above & ~(others | blocked), labels)
    wrong, right = int((marginal & (labels == 0)).sum()), int((marginal & (labels == 1)).sum())
    return {
        "blocked": int(hit_blocked.sum()),
        "blocked_duplicates": int((hit_blocked & (labels == 1)).sum()),
        "blocked_non_duplicates": int((hit_blocked & (labels == 0)).sum()),
        "only_this_rule_duplicates": right,
        "only_this_rule_non_duplicates": wrong,
        # The bar a rule must clear to be enabled: what it alone blocks holds at least as many
        # wrong answers as right ones (a wrong answer costs more than a miss).
        "earns_its_place": wrong >= right if wrong + right else None,
        "alone": {"precision": alone_p, "recall": alone_r},
        "guard_without": {"precision": without_p, "recall": without_r},
        "guard_with": {"precision": with_p, "recall": with_r},
    }


def rules_report(
    sims: NDArray[np.float64], labels: NDArray[np.int64], blocks: dict[str, Mask], threshold: float
) -> dict[str, Any]:
    above = sims >= threshold
    enabled = {r.name for r in RULES}
    out = {}
    for name, blocked in blocks.items():
        others = np.zeros(len(labels), dtype=bool)
        for other in enabled - {name}:
            others |= blocks[other]
        out[name] = {"enabled": name in enabled, **rule_effect(above, blocked, others, labels)}
    return out


def print_rules(title: str, report: dict[str, Any], verdicts: bool) -> None:
    print(f"\nguard rules {title}: blocked (duplicates / non-duplicates; by this rule only)")
    for name, e in report.items():
        ref = e["guard_without"] if e["enabled"] else e["guard_with"]
        word = "guard without it" if e["enabled"] else "guard plus it   "
        verdict = e["earns_its_place"]
        print(
            f"  [{'on ' if e['enabled'] else 'off'}] {name:17s} {e['blocked']:4d}"
            f" ({e['blocked_duplicates']:3d} / {e['blocked_non_duplicates']:3d};"
            f" {e['only_this_rule_duplicates']:3d} / {e['only_this_rule_non_duplicates']:3d})"
            f"  alone p {fmt(e['alone']['precision'])} r {e['alone']['recall']:.3f}"
            f"  {word} p {fmt(ref['precision'])} r {ref['recall']:.3f}"
            + ("  <- verdict differs" if verdicts and verdict not in (None, e["enabled"]) else "")
        )


def paraphrase_recall(path: Path, threshold: float, embedder_name: str) -> dict[str, Any] | None:
    """Share of LLM paraphrase pairs (all true duplicates) that hit at ``threshold``."""
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())
    origin, similar = [r["origin"] for r in rows], [r["similar"] for r in rows]
    key = hashlib.sha256(path.read_bytes()).hexdigest()
    sims = similarities(origin, similar, key, "paraphrases", embedder_name)
    matcher = SemanticMatcher(threshold)
    hits = sum(matcher.decide(s, b, a).hit for s, a, b in zip(sims, origin, similar, strict=True))
    return {
        "pairs": len(rows),
        "recall_with_guard": hits / len(rows),
        "recall_without_guard": float((sims >= threshold).mean()),
        "median_similarity": float(np.median(sims)),
        "recall_without_guard_curve": [[t, float((sims >= t).mean())] for t in THRESHOLDS],
    }


def compare_to_published(curve: list[list[Any]], chosen: float | None) -> str:
    """Where we stand against GPT Semantic Cache (>97% of hits correct) and vCache (no static
    threshold meets a precision target), from this run's numbers."""
    rows = {row[0]: row for row in curve}
    best_t, best_p, best_r = max(curve, key=lambda row: row[1] or 0.0)
    reach = next((t for t, p, _ in curve if p is not None and p >= 0.97), None)
    low, high = rows[0.9], rows[chosen if chosen is not None else best_t]
    return (
        "GPT Semantic Cache reports >97% of hits correct, on its own query sets. Here, on "
        f"QQP's hard negatives scored against its labels, the best grid threshold ({best_t}) "
        f"gives precision {fmt(best_p)} at recall {best_r:.3f} with the guard, and 0.97 is "
        + (f"reached at {reach}" if reach is not None else "reached at no threshold")
        + f". From 0.90 to {high[0]} precision only rises {fmt(low[1])} -> {fmt(high[1])} while "
        f"recall falls {low[2]:.3f} -> {high[2]:.3f}: vCache's argument that one static "
        "threshold cannot meet a precision target without giving up nearly all hits, because "
        "the similarity at which two questions stop being the same differs from question to "
        "question. Part of the gap is label noise: many QQP non-duplicates at >= 0.95 are "
        "questions that one answer fits."
    )


def fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    pairs = load_pairs(args.data, args.limit)
    labels = pairs.labels
    data_key = hashlib.sha256(args.data.read_bytes()).hexdigest()
    sims = similarities(pairs.stored, pairs.asked, data_key, "questions", args.embedder)
    embedded = time.perf_counter()

    all_rules = [*RULES, *CANDIDATE_RULES]
    blocks = rule_blocks(pairs, sims >= min(THRESHOLDS[0], JUDGE_FROM), all_rules)
    vetoed = np.zeros(len(labels), dtype=bool)
    for rule in RULES:
        vetoed |= blocks[rule.name]
    guarded = time.perf_counter()

    curve, bare = [], []
    print(f"{len(labels):,} pairs, {int(labels.sum()):,} duplicates ({args.data.name})")
    print("threshold  precision recall  hits   | no guard: precision recall  hits")
    for t in THRESHOLDS:
        p, r, n = precision_recall((sims >= t) & ~vetoed, labels)
        p0, r0, n0 = precision_recall(sims >= t, labels)
        curve.append([t, p, r])
        bare.append([t, p0, r0])
        print(f"  {t:.2f}      {fmt(p)}   {r:.3f}  {n:6d} |           {fmt(p0)}   {r0:.3f} {n0:6d}")

    chosen = next((t for t, p, _ in curve if p is not None and p >= TARGET_PRECISION), None)
    at = chosen if chosen is not None else DEFAULT_THRESHOLD
    p, r, n = precision_recall((sims >= at) & ~vetoed, labels)
    p0, r0, n0 = precision_recall(sims >= at, labels)
    # The shipped matcher must agree with the vectorised numbers above.
    matcher = SemanticMatcher(at)
    decided = np.array(
        [
            matcher.decide(s, b, a).hit
            for s, a, b in zip(sims, pairs.stored, pairs.asked, strict=True)
        ]
    )
    assert int(decided.sum()) == n, "SemanticMatcher disagrees with the benchmark"

    print(
        f"\nlowest threshold with precision >= {TARGET_PRECISION} (guard on): {chosen}"
        f"  (module DEFAULT_THRESHOLD = {DEFAULT_THRESHOLD})"
    )
    print(f"  at {at}: with guard precision {fmt(p)} recall {r:.3f} ({n} hits)")
    print(f"  at {at}: no guard   precision {fmt(p0)} recall {r0:.3f} ({n0} hits)")

    rules = rules_report(sims, labels, blocks, at)
    judged = rules_report(sims, labels, blocks, JUDGE_FROM)
    print_rules(f"at {at}", rules, verdicts=False)
    print_rules(f"on all pairs at >= {JUDGE_FROM} (where rules are judged)", judged, verdicts=True)

    paraphrases = (
        None if args.paraphrases is None else paraphrase_recall(args.paraphrases, at, args.embedder)
    )
    if paraphrases:
        print(
            f"\nLLM paraphrases ({paraphrases['pairs']} pairs, all duplicates): recall at {at}"
            f" {paraphrases['recall_with_guard']:.3f} with guard,"
            f" {paraphrases['recall_without_guard']:.3f} without;"
            f" median similarity {paraphrases['median_similarity']:.3f}"
        )
    comparison = compare_to_published(curve, chosen)
    print("\n" + comparison)
    done = time.perf_counter()
    timing = {
        "load_and_embed_s": round(embedded - started, 1),
        "guard_s": round(guarded - embedded, 1),
        "total_s": round(done - started, 1),
        "texts_embedded": dict(EMBEDDED),
    }
    print(f"\ntime: {timing}")
    return {
        "data": str(args.data),
        "pairs": len(labels),
        "duplicates": int(labels.sum()),
        "target_precision": TARGET_PRECISION,
        "embedder": args.embedder,
        "threshold": chosen,
        "module_default_threshold": DEFAULT_THRESHOLD,
        "precision": p,
        "recall": r,
        "hits": n,
        "curve": curve,
        "without_guard": {"precision": p0, "recall": r0, "hits": n0, "curve": bare},
        "enabled_rules": [rule.name for rule in RULES],
        "rules": rules,
        f"rules_at_or_above_{JUDGE_FROM}": judged,
        "paraphrases": paraphrases,
        "comparison": comparison,
        "timing": timing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="JSONL: text_a, text_b, label"
    )
    parser.add_argument("--limit", type=int, default=None, help="use the first N pairs only")
    parser.add_argument(
        "--embedder",
        choices=sorted(EMBEDDERS),
        default=CacheConfig().embedder,
        help="the local embedder to measure (default: the cache's default embedder)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--paraphrases",
        type=Path,
        default=DEFAULT_PARAPHRASES if DEFAULT_PARAPHRASES.is_file() else None,
        help="JSON list of {origin, similar} paraphrase pairs for a recall check",
    )
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"no data file at {args.data}")
    result = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
