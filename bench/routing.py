"""The routers measured as shipped: cost against quality on routing data that holds, per
prompt, whether a weak and a strong model answered correctly (RouteLLM's format; see
``groundgate.routing.dataset``). Nothing is tuned on the data given.

    python bench/routing.py --data ../shared/data/routing --split held-out \\
        --json bench/results/routing-heldout.json --plot bench/results/routing-heldout.png

Routers, each a curve over its threshold (a prompt goes to the strong model when its score is
below it):

- ``random``: a random share of prompts to the strong model (the expected curve);
- ``oracle``: exactly the prompts only the strong model gets right (the best possible);
- ``rules``: the longest prompts (estimated tokens) to the strong model, as the rules router's
  ``max_cheap_tokens`` would; the curve moves that length limit;
- ``learned``: the shipped learned router's P(weak model right);
- ``cascade`` (data with answers only: GSM8K): the weak answer is always paid for; the
  shipped verifier scores it and the prompt is escalated when the score is below the
  threshold. MMLU's files hold no answers, so it has no cascade.

Cost per call from the prices (USD per million tokens; defaults: strong gpt-4-1106-preview
$10 in / $30 out, weak Mixtral-8x7B $0.6 / $0.6), tokens estimated from the prompt and each
model's answer in the file (4 characters a token, as the gateway estimates); MMLU has no
answers: each call is charged ``--mmlu-output-tokens`` (default 1: its prompts end "Answer:"
and ask for a letter). ``cost_ratio`` is the cost against sending every prompt to the strong
model; ``at_95`` the cheapest point keeping 95% of the strong model's accuracy (null if none).

Output: ``{"strong_accuracy", "weak_accuracy", "routers": {NAME: {"curve": [[strong_share,
cost_ratio, accuracy], ...], "at_95": {...}}}}`` for all the prompts read (when the folder
holds both datasets, pooled; no cascade there, since MMLU has no answers), ``datasets``: the
same per dataset, and ``meta`` (rows, prices, split, notes).

``--split held-out`` keeps only the prompts the trainer held out (same hash and seed as in the
router file's meta): on ``../shared/data/routing`` those are the honest figures, ``all`` is
in-sample for the trained routers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from groundgate.guards.injection import embedding_text
from groundgate.routing.dataset import Row, is_held_out, read_all
from groundgate.routing.embed_cache import DEFAULT_CACHE_DIR, embed_cached
from groundgate.routing.features import estimate_tokens
from groundgate.routing.learned import LearnedRouter, load_router, shipped_router
from groundgate.routing.tradeoff import (
    QUALITY_TARGET,
    Outcomes,
    Point,
    Prices,
    cheapest_reaching,
    oracle_scores,
    random_curve,
    random_reaching,
    thin,
    threshold_curve,
)
from groundgate.routing.train import MMLU_OUTPUT_TOKENS, outcomes
from groundgate.routing.verifier import AnswerVerifier, load_verifier, shipped_verifier

DEFAULT_PRICES = Prices()


def _at(point: Point | None) -> dict[str, float] | None:
    if point is None:
        return None
    share, cost, accuracy = point.triple()
    return {"strong_share": share, "cost_ratio": cost, "accuracy": accuracy}


def router_block(points: list[Point], target: float) -> dict[str, Any]:
    best = cheapest_reaching(points, target)
    return {"curve": [p.triple() for p in thin(points, must=best)], "at_95": _at(best)}


def evaluate(
    rows: list[Row],
    o: Outcomes,
    learned: np.ndarray | None,
    verified: np.ndarray | None,
) -> dict[str, Any]:
    """The output block for ``rows``: both accuracies and each router's curve."""
    target = QUALITY_TARGET * o.strong_accuracy
    best_random = random_reaching(o, target)
    routers: dict[str, Any] = {
        "random": {
            "curve": [p.triple() for p in thin(random_curve(o), must=best_random)],
            "at_95": _at(best_random),
        },
        "oracle": router_block(threshold_curve(o, oracle_scores(o)), target),
        # Longest first: the score is minus the prompt's estimated tokens.
        "rules": router_block(
            threshold_curve(o, -np.array([estimate_tokens(r.prompt) for r in rows], float)),
            target,
        ),
    }
    if learned is not None:
        routers["learned"] = router_block(threshold_curve(o, learned), target)
    if verified is not None:
        routers["cascade"] = router_block(threshold_curve(o, verified, cascade=True), target)
    return {
        "strong_accuracy": round(o.strong_accuracy, 4),
        "weak_accuracy": round(o.weak_accuracy, 4),
        "routers": routers,
    }


def learned_scores(router: LearnedRouter, rows: list[Row], cache_dir: Path | None) -> np.ndarray:
    """P(weak right) per row; embeddings from the cache where the trainer or an earlier run
    left them (the same int8 MiniLM vectors a request would get), else computed now."""

    def embed(texts: list[str]) -> Any:
        from groundgate.providers.local.models import process_models

        return process_models().embedder(router.embedder).embed(texts)

    texts = [embedding_text(r.prompt) for r in rows]
    vectors = embed_cached(texts, embed, embedder=router.embedder, cache_dir=cache_dir)
    return np.array(
        [router.p_cheap_correct(r.prompt, v) for r, v in zip(rows, vectors, strict=True)]
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    router = load_router(args.router) if args.router else shipped_router()
    verifier: AnswerVerifier = load_verifier(args.verifier) if args.verifier else shipped_verifier()
    found = read_all(args.data)
    if not found:
        raise SystemExit(f"no gsm8k/gsm8k_responses.csv or mmlu/responses/*.csv under {args.data}")
    notes = []
    if args.split == "held-out":
        share, seed = float(router.meta["holdout"]), int(router.meta["seed"])
        found = {
            name: [r for r in rows if is_held_out(r.prompt, share, seed)]
            for name, rows in found.items()
        }
        found = {name: rows for name, rows in found.items() if rows}
        notes.append(f"held-out prompts only (holdout {share}, seed {seed}, as the trainer's)")
    prices = Prices(args.strong_input, args.strong_output, args.weak_input, args.weak_output)
    cache_dir = None if args.no_cache else args.cache_dir
    datasets: dict[str, Any] = {}
    pooled_rows: list[Row] = []
    pooled_learned: list[np.ndarray] = []
    for name in sorted(found):
        rows = found[name]
        o = outcomes(rows, prices, args.mmlu_output_tokens)
        scores = learned_scores(router, rows, cache_dir)
        answered = all(r.weak_response is not None for r in rows)
        verified = (
            np.array([verifier.p_correct(r.prompt, r.weak_response or "") for r in rows])
            if answered
            else None
        )
        if not answered:
            notes.append(f"{name}: no answers in the files, so no cascade")
        datasets[name] = evaluate(rows, o, scores, verified)
        pooled_rows += rows
        pooled_learned.append(scores)
    if len(datasets) == 1:
        top = dict(next(iter(datasets.values())))
    else:
        notes.append(
            "top level: all datasets pooled (cascade only per dataset, where answers exist)"
        )
        o = outcomes(pooled_rows, prices, args.mmlu_output_tokens)
        top = evaluate(pooled_rows, o, np.concatenate(pooled_learned), None)
    return {
        **top,
        "datasets": datasets,
        "meta": {
            "data": str(args.data),
            "split": args.split,
            "rows": {name: len(rows) for name, rows in found.items()},
            "prices_usd_per_million": {
                "strong": {"input": prices.strong_input, "output": prices.strong_output},
                "weak": {"input": prices.weak_input, "output": prices.weak_output},
            },
            "mmlu_output_tokens": args.mmlu_output_tokens,
            "router": {"file": str(args.router or "shipped"), "threshold": router.threshold},
            "verifier": {"file": str(args.verifier or "shipped"), "threshold": verifier.threshold},
            "notes": notes,
        },
    }


def plot(result: dict[str, Any], path: Path) -> bool:
    """Accuracy against cost ratio, one panel per dataset; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = result["datasets"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (name, block) in zip(axes[0], panels.items(), strict=True):
        for router, data in block["routers"].items():
            curve = np.array(data["curve"])
            style = {"random": "k--", "oracle": "k:"}.get(router, "-")
            ax.plot(curve[:, 1], curve[:, 2], style, label=router)
            if data["at_95"]:
                ax.plot(data["at_95"]["cost_ratio"], data["at_95"]["accuracy"], "o", color="grey")
        target = QUALITY_TARGET * block["strong_accuracy"]
        ax.axhline(target, color="grey", linewidth=0.6)
        ax.set_title(f"{name} ({result['meta']['split']}, {result['meta']['rows'][name]} prompts)")
        ax.set_xlabel("cost relative to all-strong")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="routing data folder")
    parser.add_argument("--json", type=Path, required=True, help="result file to write")
    parser.add_argument("--plot", type=Path, help="PNG of the curves (needs matplotlib)")
    parser.add_argument("--split", choices=("all", "held-out"), default="all")
    parser.add_argument("--router", type=Path, help="router file (default: the shipped one)")
    parser.add_argument("--verifier", type=Path, help="verifier file (default: the shipped one)")
    parser.add_argument("--strong-input", type=float, default=DEFAULT_PRICES.strong_input)
    parser.add_argument("--strong-output", type=float, default=DEFAULT_PRICES.strong_output)
    parser.add_argument("--weak-input", type=float, default=DEFAULT_PRICES.weak_input)
    parser.add_argument("--weak-output", type=float, default=DEFAULT_PRICES.weak_output)
    parser.add_argument("--mmlu-output-tokens", type=int, default=MMLU_OUTPUT_TOKENS)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--no-cache", action="store_true", help="embed every prompt afresh")
    args = parser.parse_args(argv)
    result = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for name, block in result["datasets"].items():
        print(f"{name}: strong {block['strong_accuracy']:.3f}, weak {block['weak_accuracy']:.3f}")
        for router, data in block["routers"].items():
            at = data["at_95"]
            figures = (
                "never"
                if at is None
                else (
                    f"cost {at['cost_ratio']:.3f} (strong share {at['strong_share']:.3f}, "
                    f"accuracy {at['accuracy']:.3f})"
                )
            )
            print(f"  {router:8s} 95% of strong: {figures}")
    if args.plot and not plot(result, args.plot):
        print("no plot: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
