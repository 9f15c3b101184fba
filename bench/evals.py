"""The evaluation harness measured: (a) the local faithfulness scorer against labelled data,
(b) the LLM judge recovering a hidden rule, (c) what a re-run of an unchanged dataset costs.

(a) ``faithfulness_auc``: every row of ``--grounding FILE`` (default
    ``../shared/data/grounding/dev.jsonl``: HaluEval-QA, MIT, and FaithBench, CC BY-NC-SA, read
    for evaluation only) scored by ``evals.rag_metrics.faithfulness_score`` with its shipped
    constants, nothing tuned here; AUC of "supported" (label 1). The groundedness constants
    were chosen on the even HaluEval ids of this file (``guards/grounding.py``), so the
    figures are also given for the odd HaluEval ids and for FaithBench, which it was not tuned
    on.
(b) The judge harness, end to end through a real Container over real HTTP: two model variants
    answer ``--cases`` questions (the fake upstream writes their answers: each carries 0-2
    marker words, variant A with chance ``P_A`` per word, B with ``P_B``); the judge model is the
    fake upstream too, scoring an answer by a rule hidden from the harness (2 + its marker
    words, on 1..5) plus zero-mean noise (-1 or +1 a quarter of the time each). The true
    difference of the normalised rubric score (``(score - 1) / 4``) is therefore
    ``(P_A - P_B) / 2``. The harness runs ``groundgate eval``'s runner with the rubric judge on
    both variants, then the paired bootstrap of ``eval compare``, and the pairwise judge (both
    orders) on the two reports. ``judge_ranking_correct``: the rubric means and the pairwise
    wins both put A first; ``judge_ci_contains_truth``: the 95% interval of A - B holds the
    true difference.
(c) ``rerun_upstream_calls``: an app over a small knowledge base is evaluated twice with the
    eval cache and the judge; requests the fake upstream receives during the second run.

Usage::

    python bench/evals.py [--grounding FILE] [--cases 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.evals.app_answerer import AppAnswerer
from groundgate.evals.bootstrap import paired_difference
from groundgate.evals.cache import SQLiteEvalCache
from groundgate.evals.dataset import EvalCase
from groundgate.evals.judge import Judge, JudgeScorer, compare_reports
from groundgate.evals.model_call import chat_once
from groundgate.evals.rag_metrics import faithfulness_score
from groundgate.evals.report import EvalReport
from groundgate.evals.runner import AnswerResult, run_eval
from groundgate.retrieval.documents import SourceDocument
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guards_grounding import auc

DEFAULT_GROUNDING = Path(__file__).resolve().parents[2] / "shared/data/grounding/dev.jsonl"
MARKERS = ("because", "therefore", "evidence")
P_A, P_B = 0.6, 0.4
TRUE_DIFFERENCE = (P_A - P_B) / 2  # E[markers_A - markers_B] / 4, two draws per answer
SEED = 0

CONFIG = """
[store]
path = "{tmp}/bench.db"
[cache]
enabled = false
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.variant-a]
deployments = ["up:variant-a"]
[models.variant-b]
deployments = ["up:variant-b"]
[models.judge]
deployments = ["up:judge"]
[prices."up:judge"]
input_per_mtok = 1.0
output_per_mtok = 2.0
[prices."up:variant-a"]
input_per_mtok = 0.5
output_per_mtok = 1.5
[apps.bench-app]
knowledge_base = "bench-kb"
model = "variant-a"
"""


# -- (a) faithfulness --------------------------------------------------------------------


def faithfulness_figures(path: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    started = time.perf_counter()
    scores = [
        faithfulness_score([r["context"]], r["answer"], r.get("question") or "") for r in rows
    ]
    elapsed = time.perf_counter() - started
    labels = [int(r["label"]) for r in rows]

    def subset(keep: Any) -> dict[str, Any]:
        picked = [(s, y) for s, y, r in zip(scores, labels, rows, strict=True) if keep(r)]
        return {
            "auc": round(auc([s for s, _ in picked], [y for _, y in picked]), 4),
            "rows": len(picked),
        }

    def halueval_number(row: dict[str, Any]) -> int:
        match = re.search(r"-(\d+)-", row["id"])
        return int(match.group(1)) if match else -1

    return {
        "auc": round(auc(scores, labels), 4),
        "rows": len(rows),
        "ms_per_row": round(elapsed * 1000 / max(len(rows), 1), 2),
        "halueval_odd_not_tuned_on": subset(
            lambda r: r.get("source") == "halueval_qa" and halueval_number(r) % 2 == 1
        ),
        "halueval_even_tuned_on": subset(
            lambda r: r.get("source") == "halueval_qa" and halueval_number(r) % 2 == 0
        ),
        "faithbench": subset(lambda r: r.get("source") == "faithbench"),
    }


# -- the fake upstream's hidden rule -------------------------------------------------------


def variant_answer(index: int, variant: str) -> str:
    rng = random.Random(f"{SEED}:{variant}:{index}")
    chance = P_A if variant == "variant-a" else P_B
    words = [w for w in rng.sample(MARKERS, 2) if rng.random() < chance]
    return f"Answer to question {index}: it holds {' '.join(words)} as stated.".replace("  ", " ")


def hidden_rule(answer: str) -> int:
    """2 + the distinct marker words in the answer: 2..4 (so noise of 1 stays within 1..5)."""
    return 2 + sum(1 for word in MARKERS if re.search(rf"\b{word}\b", answer))


def noisy_score(answer: str) -> int:
    u = int(hashlib.sha256(f"{SEED}:{answer}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return hidden_rule(answer) + (-1 if u < 0.25 else 1 if u < 0.5 else 0)


_ANSWER_TO_SCORE = re.compile(r"Answer to score:\n(.*)\Z", re.S)
_PAIR = re.compile(
    r"\[Answer A\]\n(.*?)\n\[End of answer A\].*?\[Answer B\]\n(.*?)\n\[End of answer B\]", re.S
)


def respond(path: str, body: Any) -> Behavior | None:
    if not isinstance(body, dict) or not path.endswith("/chat/completions"):
        return None
    model = body.get("model")
    user = next(
        (m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), ""
    )
    if model in ("variant-a", "variant-b"):
        number = re.search(r"(\d+)", user)
        return Behavior(content=variant_answer(int(number.group(1)) if number else 0, model))
    if model != "judge":
        return None
    pair = _PAIR.search(user)
    if pair is not None:
        a, b = hidden_rule(pair.group(1)), hidden_rule(pair.group(2))
        winner = "A" if a > b else "B" if b > a else "tie"
        return Behavior(content=json.dumps({"winner": winner, "reason": "hidden rule"}))
    scored = _ANSWER_TO_SCORE.search(user)
    if scored is None:
        return Behavior(content="I cannot tell.")
    return Behavior(content=json.dumps({"score": noisy_score(scored.group(1)), "reason": "rule"}))


class ModelAnswerer:
    """A plain model as the system under test: the question as one user message."""

    def __init__(self, runtime: Container, model: str) -> None:
        self.runtime, self.model = runtime, model

    async def __call__(self, case: EvalCase, /) -> AnswerResult:
        started = time.perf_counter()
        reply = await chat_once(
            self.runtime, self.model, [{"role": "user", "content": case.question}]
        )
        return AnswerResult(
            answer=reply.text,
            abstained=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            cost_usd=reply.cost_usd,
            trace_id=reply.trace_id,
        )


# -- (b) the judge ------------------------------------------------------------------------


def judge_scores(report: EvalReport) -> dict[str, float]:
    return {r.id: r.scores["judge"] for r in report.per_case if "judge" in r.scores}


async def judge_figures(runtime: Container, cases: int) -> dict[str, Any]:
    dataset = [EvalCase(id=f"q{i}", question=f"Question {i}: does it hold?") for i in range(cases)]
    judge = Judge(runtime, "judge")
    reports = {}
    for variant in ("variant-a", "variant-b"):
        reports[variant] = await run_eval(
            dataset,
            ModelAnswerer(runtime, variant),
            scorers=[JudgeScorer(judge)],
            concurrency=8,
            progress=False,
        )
    a, b = judge_scores(reports["variant-a"]), judge_scores(reports["variant-b"])
    both = sorted(a.keys() & b.keys())
    # paired_difference reports its second argument minus its first: here A - B.
    compared = paired_difference([b[i] for i in both], [a[i] for i in both], seed=SEED)
    pairwise = await compare_reports(
        judge, reports["variant-a"], reports["variant-b"], concurrency=8
    )
    low, high = compared.diff.low, compared.diff.high
    rubric_order = compared.diff.value is not None and compared.diff.value > 0
    pairwise_order = pairwise.wins > pairwise.losses
    return {
        "judge_ranking_correct": bool(rubric_order and pairwise_order),
        "judge_ci_contains_truth": bool(
            low is not None and high is not None and low <= TRUE_DIFFERENCE <= high
        ),
        "details": {
            "cases": cases,
            "seed": SEED,
            "judged_pairs": len(both),
            "true_difference": TRUE_DIFFERENCE,
            "rubric_mean_a": compared.b,
            "rubric_mean_b": compared.a,
            "difference_a_minus_b": compared.diff.value,
            "ci95": [low, high],
            "p_value": compared.p_value,
            "significant": compared.significant,
            "pairwise": {"a_wins": pairwise.wins, "b_wins": pairwise.losses, "ties": pairwise.ties},
            "judge_calls": judge.tally.upstream_calls,
            "judge_cost_usd": round(judge.tally.cost_usd, 6),
            "unparseable": judge.tally.unparseable,
        },
    }


# -- (c) the re-run --------------------------------------------------------------------------


async def rerun_figures(runtime: Container, upstream: FakeUpstream, tmp: Path) -> dict[str, Any]:
    text = " ".join(f"Fact {i}: the value of item {i} is {i * 7}." for i in range(40))
    doc = SourceDocument(id="facts.md", text=text, title="Facts", source="facts.md")
    await runtime.ingestor("bench-kb").ingest("default", "bench-kb", [doc])
    dataset = [EvalCase(id=f"r{i}", question=f"Question {i}: what is item {i}?") for i in range(20)]
    cache = SQLiteEvalCache(tmp / "eval-cache.sqlite")
    try:
        runs = []
        for _ in range(2):
            before = upstream.stats()["received"]
            report = await run_eval(
                dataset,
                AppAnswerer(runtime, "bench-app"),
                scorers=[JudgeScorer(Judge(runtime, "judge", cache=cache))],
                cache=cache,
                progress=False,
            )
            runs.append((upstream.stats()["received"] - before, report))
    finally:
        cache.close()
    (first_calls, first), (second_calls, second) = runs
    return {
        "rerun_upstream_calls": second_calls,
        "details": {
            "cases": len(dataset),
            "first_run_upstream_calls": first_calls,
            "second_run_cached_cases": second.cached_cases,
            "second_run_cost_usd": second.rerun_cost_usd,
            "judge_scores_equal": judge_scores(first) == judge_scores(second),
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    faith = faithfulness_figures(Path(args.grounding))
    report["faithfulness_auc"] = faith["auc"]
    with tempfile.TemporaryDirectory() as folder, FakeUpstream() as upstream:
        tmp = Path(folder)
        upstream.respond_with(respond)
        config = tmp / "bench.toml"
        config.write_text(CONFIG.format(tmp=tmp, fake=upstream.url))
        runtime = Container(load_settings(config))
        await runtime.start()
        try:
            judged = await judge_figures(runtime, args.cases)
            rerun = await rerun_figures(runtime, upstream, tmp)
        finally:
            await runtime.stop()
    report["judge_ranking_correct"] = judged["judge_ranking_correct"]
    report["judge_ci_contains_truth"] = judged["judge_ci_contains_truth"]
    report["rerun_upstream_calls"] = rerun["rerun_upstream_calls"]
    report["details"] = {
        "faithfulness": faith,
        "judge": judged["details"],
        "rerun": rerun["details"],
    }
    report["bars"] = {
        "faithfulness_auc>=0.80": faith["auc"] >= 0.80,
        "judge_ranking_correct": judged["judge_ranking_correct"],
        "judge_ci_contains_truth": judged["judge_ci_contains_truth"],
        "rerun_upstream_calls==0": rerun["rerun_upstream_calls"] == 0,
    }
    return report


def main() -> None:
    global SEED  # the answers' and the judge's noise: one seed for the whole run
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grounding", default=str(DEFAULT_GROUNDING))
    parser.add_argument("--cases", type=int, default=300, help="Questions per variant (b).")
    parser.add_argument("--seed", type=int, default=SEED, help="Seed of answers and judge noise.")
    parser.add_argument("--json", dest="json_out", help="Write the figures here.")
    args = parser.parse_args()
    SEED = args.seed
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
