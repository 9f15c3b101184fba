"""The embedded local answerer on SQuAD 2.0: each question with its own passage as context.

    python bench/answers.py [--data FILE] [--limit N] [--json OUT] [--report OUT]

Each question goes to the ``local`` provider's ``extractive`` model with its paragraph as the
system message, through the evaluation harness (``groundgate.evals``). Reported: token F1 and
exact match on answerable questions (SQuAD normalisation, best over the gold answers, an
abstention scores 0), the share of unanswerable questions the answerer abstained on
(``abstention_accuracy``) and the share of answerable ones it answered
(``answer_rate_answerable``), with the counts.

The extractive answerer quotes whole sentences (up to three, ``[n]`` citation markers stripped
before scoring) while SQuAD's gold answers are short spans, so precision, and with it F1, is
naturally modest; exact match is close to zero by construction. The default data is the SQuAD
2.0 dev subset in ``../shared/data`` (relative to the repository root); ``--data`` takes any
SQuAD 2.0 JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from groundgate.config import LocalModelConfig, ProviderConfig
from groundgate.evals.dataset import EvalCase
from groundgate.evals.report import EvalReport, write_report
from groundgate.evals.runner import AnswerResult, run_eval
from groundgate.providers.base import ChatCall
from groundgate.providers.local import CHAT_MODEL, LocalProvider

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (ROOT / "../shared/data/squad_v2/dev_subset.json").resolve()
_CITATION = re.compile(r"\s*\[\d+\]")


def strip_citations(text: str) -> str:
    """Drop the answerer's ``[n]`` markers: "Paris [1]." -> "Paris."."""
    return _CITATION.sub("", text).strip()


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    case: EvalCase
    passage: str


def load_squad(path: Path, limit: int | None = None) -> list[SquadQuestion]:
    """Questions in file order, each with its paragraph; gold answers deduplicated."""
    data = json.loads(path.read_text(encoding="utf-8"))
    questions: list[SquadQuestion] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = (
                    [] if impossible else list(dict.fromkeys(a["text"] for a in qa["answers"]))
                )
                case = EvalCase(
                    id=qa["id"], question=qa["question"], answers=answers, answerable=not impossible
                )
                questions.append(SquadQuestion(case, paragraph["context"]))
                if limit is not None and len(questions) >= limit:
                    return questions
    return questions


class LocalSquadAnswerer:
    """An ``Answerer`` that asks the local provider with the question's own passage."""

    def __init__(self, provider: LocalProvider, passages: dict[str, str]) -> None:
        self.provider = provider
        self.passages = passages

    async def __call__(self, case: EvalCase, /) -> AnswerResult:
        call = ChatCall(
            messages=[
                {"role": "system", "content": self.passages[case.case_id]},
                {"role": "user", "content": case.question},
            ]
        )
        started = time.perf_counter()
        completion = await self.provider.complete(call, CHAT_MODEL, timeout=30)
        latency_ms = (time.perf_counter() - started) * 1000
        text: str = completion.choices[0]["message"]["content"]
        citations: list[dict[str, Any]] = completion.extra.get("citations", [])
        return AnswerResult(
            answer=strip_citations(text),
            abstained=bool(completion.extra.get("abstained", False)),
            cited_ids=list(dict.fromkeys(str(c["index"]) for c in citations)),
            latency_ms=latency_ms,
        )


def summarise(report: EvalReport, data: Path) -> dict[str, Any]:
    answerable = [r for r in report.per_case if r.answerable]
    unanswerable = [r for r in report.per_case if not r.answerable]

    def share(records: list[Any], predicate: Any) -> float | None:
        return sum(1 for r in records if predicate(r)) / len(records) if records else None

    answered = [r for r in answerable if not r.abstained and r.error is None]
    f1_answered = sum(r.scores["f1"] for r in answered) / len(answered) if answered else None
    return {
        "f1": report.metrics["f1"],
        "exact": report.metrics["exact"],
        "abstention_accuracy": share(unanswerable, lambda r: r.abstained and r.error is None),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "answer_rate_answerable": share(answerable, lambda r: not r.abstained and r.error is None),
        # Context for the figures above, not part of the headline.
        "f1_when_answered": f1_answered,
        "errors": report.metrics["errors"],
        "latency_p50_ms": report.metrics["latency_p50_ms"],
        "data": str(data),
    }


def print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"local extractive answerer on {Path(summary['data']).name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "data":
            continue
        shown = "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    console.print(table)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = load_squad(args.data, args.limit)
    if not questions:
        raise SystemExit(f"no questions in {args.data}")
    provider = LocalProvider("local", ProviderConfig(type="local"), LocalModelConfig())
    await provider.start()
    try:
        answerer = LocalSquadAnswerer(provider, {q.case.case_id: q.passage for q in questions})
        report = await run_eval(
            [q.case for q in questions],
            answerer,
            concurrency=provider.local.threads,
            dataset=str(args.data),
            app="local:extractive",
        )
    finally:
        await provider.aclose()
    if args.report:
        write_report(report, args.report)
    return summarise(report, args.data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a SQuAD 2.0 JSON file")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--report", type=Path, help="write the full per-question eval report")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if not args.data.is_file():
        parser.error(f"no such file: {args.data}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in a package; never download

    summary = asyncio.run(run(args))
    print_summary(summary, Console())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
