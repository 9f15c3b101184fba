"""Run a dataset through an :class:`Answerer`, score each case and aggregate the report.

The answerer is whatever is under test (an app pipeline, a model, a remote gateway): the
harness only calls it and reads its :class:`AnswerResult`. Cases run with bounded concurrency;
an exception from the answerer is recorded on its case (which then scores 0 wherever a score
applies) and never stops the run. Results keep the dataset's order.

Metric coverage: a case counts towards a metric only when it carries what the metric needs.

==========================  ===========================================================
metric                      cases covered
==========================  ===========================================================
exact, f1                   answerable cases with ``answers`` (an abstention scores 0)
rules_pass                  cases with ``must_contain`` or ``must_not_contain``
abstention_accuracy         every case (``answerable`` defaults to true)
recall@K, mrr, ndcg@10      cases with ``relevant_ids`` (mrr is cut at K as well)
latency_*_ms                cases that did not fail (a failure's time says little)
cost_usd_total, _mean       every case
errors                      every case (the count of failed cases)
(a scorer's metrics)        the cases it scores (``evals/scoring.py``, ``builtin_scorers``)
scoring_cost_usd_total      with scorers: what they spent (a judge's model calls)
scoring_upstream_calls      with scorers: the model calls they made
==========================  ===========================================================
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from groundgate.evals import scorers
from groundgate.evals.dataset import DatasetError, EvalCase, load_dataset
from groundgate.evals.report import (
    CaseRecord,
    EvalReport,
    ReportError,
    compare,
    comparison_table,
    load_report,
    metrics_table,
    write_report,
)

if TYPE_CHECKING:
    from groundgate.evals.scoring import CaseScorer, ScoreOutcome

NDCG_AT = 10


@dataclass(slots=True)
class AnswerResult:
    """What the system under test did with one case."""

    answer: str
    abstained: bool  # the system said it cannot answer
    retrieved_ids: list[str] = field(default_factory=list)  # ranked, deduplicated, best first
    # The text of the passages the answer was grounded on, in the order the prompt gave them
    # (faithfulness and context metrics read it).
    contexts: list[str] = field(default_factory=list)
    cited_ids: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    trace_id: str | None = None
    error: str | None = None  # set if the call failed; the case then scores 0 where it applies


class Answerer(Protocol):
    """The system under test: answers one case. May raise; the runner records the error."""

    async def __call__(self, case: EvalCase, /) -> AnswerResult: ...


# -- scoring one case ------------------------------------------------------------------------


def score_case(case: EvalCase, result: AnswerResult, k: int = 10) -> dict[str, float]:
    """The scores that apply to ``case`` (keys as in the report's metrics; recall is
    ``recall@{k}``). A failed case scores 0 on each of them."""
    failed = result.error is not None
    scores: dict[str, float] = {}
    if case.answerable and case.answers:
        if failed or result.abstained:
            scores["exact"] = scores["f1"] = 0.0
        else:
            scores["exact"] = scorers.best_of(scorers.exact_match, result.answer, case.answers)
            scores["f1"] = scorers.best_of(scorers.token_f1, result.answer, case.answers)
    if case.has_rules:
        passed = not failed and scorers.rules_pass(
            result.answer, case.must_contain, case.must_not_contain
        )
        scores["rules_pass"] = float(passed)
    correct = not failed and scorers.abstention_correct(result.abstained, case.answerable)
    scores["abstention_accuracy"] = float(correct)
    if case.relevant_ids:
        retrieved = [] if failed else result.retrieved_ids
        scores[f"recall@{k}"] = scorers.recall_at_k(retrieved, case.relevant_ids, k)
        scores["mrr"] = scorers.mrr_at_k(retrieved, case.relevant_ids, k)
        scores[f"ndcg@{NDCG_AT}"] = scorers.ndcg_at_k(retrieved, case.relevant_ids, NDCG_AT)
    return scores


def aggregate(
    records: Sequence[CaseRecord], k: int = 10
) -> tuple[dict[str, float | int | None], dict[str, int]]:
    """Metrics (means of per-case scores, latency percentiles, cost, errors) and coverage.

    Every metric is present; one that no case covers is None with coverage 0."""
    by_metric: dict[str, list[float]] = {}
    for record in records:
        for name, value in record.scores.items():
            by_metric.setdefault(name, []).append(value)
    metrics: dict[str, float | int | None] = {}
    coverage: dict[str, int] = {}
    names = ("exact", "f1", "rules_pass", "abstention_accuracy", f"recall@{k}", "mrr")
    for name in (*names, f"ndcg@{NDCG_AT}"):
        values = by_metric.get(name, [])
        metrics[name], coverage[name] = scorers.mean(values), len(values)
    for name in sorted(set(by_metric) - set(metrics)):  # the added scorers' metrics
        metrics[name], coverage[name] = scorers.mean(by_metric[name]), len(by_metric[name])

    latencies = [r.latency_ms for r in records if r.error is None]
    metrics["latency_p50_ms"] = scorers.percentile(latencies, 50)
    metrics["latency_p95_ms"] = scorers.percentile(latencies, 95)
    metrics["latency_mean_ms"] = scorers.mean(latencies)
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_mean_ms"):
        coverage[name] = len(latencies)
    costs = [r.cost_usd for r in records]
    metrics["cost_usd_total"] = math.fsum(costs)
    metrics["cost_usd_mean"] = scorers.mean(costs)
    coverage["cost_usd_total"] = coverage["cost_usd_mean"] = len(costs)
    metrics["errors"] = sum(1 for r in records if r.error is not None)
    coverage["errors"] = len(records)
    if any(r.scoring_calls or r.scoring_cost_usd for r in records):
        metrics["scoring_cost_usd_total"] = math.fsum(r.scoring_cost_usd for r in records)
        metrics["scoring_upstream_calls"] = sum(r.scoring_calls for r in records)
        coverage["scoring_cost_usd_total"] = coverage["scoring_upstream_calls"] = len(records)
    return metrics, coverage


# -- running ---------------------------------------------------------------------------------


def _record(
    case: EvalCase, result: AnswerResult, k: int, outcomes: Sequence[ScoreOutcome] = ()
) -> CaseRecord:
    record = CaseRecord(
        id=case.case_id,
        question=case.question,
        answerable=case.answerable,
        answer=result.answer,
        abstained=result.abstained,
        retrieved_ids=list(result.retrieved_ids),
        cited_ids=list(result.cited_ids),
        latency_ms=result.latency_ms,
        cost_usd=result.cost_usd,
        trace_id=result.trace_id,
        error=result.error,
        scores=score_case(case, result, k),
    )
    for outcome in outcomes:
        record.scores.update(outcome.scores)
        record.scoring_cost_usd += outcome.cost_usd
        record.scoring_calls += outcome.upstream_calls
        record.details.update(outcome.details)
    return record


async def _score_one(
    case: EvalCase, result: AnswerResult, case_scorers: Sequence[CaseScorer]
) -> list[ScoreOutcome]:
    """Each scorer's outcome; one that raises is noted on the case and scores nothing."""
    from groundgate.evals.scoring import ScoreOutcome

    outcomes = []
    for scorer in case_scorers:
        try:
            outcomes.append(await scorer.score(case, result))
        except Exception as exc:  # a scorer's bug must not end the run
            message = f"{type(exc).__name__}: {exc}"
            outcomes.append(ScoreOutcome({}, details={f"{scorer.name}_error": message}))
    return outcomes


def _failure(message: str, elapsed_ms: float) -> AnswerResult:
    return AnswerResult(answer="", abstained=False, latency_ms=elapsed_ms, error=message)


async def _answer_one(case: EvalCase, answerer: Answerer, timeout_s: float | None) -> AnswerResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            result = await answerer(case)
    except TimeoutError:
        elapsed = (time.perf_counter() - started) * 1000
        return _failure(f"timed out after {timeout_s:g}s", elapsed)
    except Exception as exc:  # recorded on the case; one bad case must not end the run
        elapsed = (time.perf_counter() - started) * 1000
        return _failure(f"{type(exc).__name__}: {exc}", elapsed)
    elapsed = (time.perf_counter() - started) * 1000
    if not isinstance(result, AnswerResult):
        return _failure(f"the answerer returned {type(result).__name__}, not AnswerResult", elapsed)
    # Keep the report valid JSON: a missing or nonsensical figure becomes the measured time / 0.
    if not (math.isfinite(result.latency_ms) and result.latency_ms >= 0):
        result.latency_ms = elapsed
    if not (math.isfinite(result.cost_usd) and result.cost_usd >= 0):
        result.cost_usd = 0.0
    return result


async def run_eval(
    cases: Sequence[EvalCase],
    answerer: Answerer,
    *,
    concurrency: int = 4,
    k: int = 10,
    progress: bool = True,
    dataset: str | None = None,
    app: str | None = None,
    timeout_s: float | None = None,
    scorers: Sequence[CaseScorer] = (),
) -> EvalReport:
    """Answer every case (at most ``concurrency`` at once), score and aggregate.

    ``scorers`` (``evals/scoring.py``) score each case after its answer, within the same
    concurrency bound; their scores, cost and details go on the case.

    ``timeout_s`` bounds each case (None: no bound beyond the answerer's own); a case over it
    is recorded as failed. With ``progress`` a Rich progress bar is drawn on stderr.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    semaphore = asyncio.Semaphore(concurrency)
    results: list[AnswerResult | None] = [None] * len(cases)
    scored: list[list[ScoreOutcome]] = [[] for _ in cases]
    bar = Progress(
        TextColumn("[bold]eval[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )

    with bar:
        task = bar.add_task("eval", total=len(cases), failed=0)
        failed = 0

        async def run_one(index: int, case: EvalCase) -> None:
            nonlocal failed
            async with semaphore:
                result = await _answer_one(case, answerer, timeout_s)
                scored[index] = await _score_one(case, result, scorers)
            results[index] = result
            failed += result.error is not None
            bar.update(task, advance=1, failed=failed)

        await asyncio.gather(*(run_one(i, case) for i, case in enumerate(cases)))

    records = []
    for case, maybe, outcomes in zip(cases, results, scored, strict=True):
        assert maybe is not None  # gather finished every case
        records.append(_record(case, maybe, k, outcomes))
    metrics, coverage = aggregate(records, k)
    return EvalReport(
        dataset=dataset,
        app=app,
        created_at=created_at,
        cases=len(records),
        k=k,
        metrics=metrics,
        coverage=coverage,
        per_case=records,
    )


# -- the CLI's work --------------------------------------------------------------------------


async def eval_command(
    dataset_path: str | Path,
    answerer: Answerer,
    *,
    app: str | None = None,
    out: str | Path | None = None,
    baseline: str | Path | None = None,
    max_drop: float = 0.02,
    concurrency: int = 4,
    k: int = 10,
    console: Console | None = None,
    progress: bool = True,
    gate_latency: bool = False,
    scorers: Sequence[CaseScorer] = (),
) -> int:
    """What ``groundgate eval`` does once it has an answerer: load and validate the dataset
    (and the baseline, before spending anything on the run), run, write the report, print the
    metrics and, given a baseline, the gate. Returns the exit code: 0 pass, 1 regression
    against the baseline, 2 bad input (dataset, baseline or options)."""
    console = console or Console()
    problems = []
    if concurrency < 1:
        problems.append(f"--concurrency must be at least 1, got {concurrency}")
    if k < 1:
        problems.append(f"-k must be at least 1, got {k}")
    if not max_drop >= 0:
        problems.append(f"--max-drop must be >= 0, got {max_drop}")
    if problems:
        for problem in problems:
            console.print(f"[red]error:[/] {escape(problem)}", highlight=False)
        return 2
    try:
        cases = load_dataset(dataset_path)
        base = load_report(baseline) if baseline is not None else None
    except (DatasetError, ReportError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2

    report = await run_eval(
        cases,
        answerer,
        concurrency=concurrency,
        k=k,
        progress=progress,
        dataset=str(dataset_path),
        app=app,
        scorers=scorers,
    )
    if out is not None:
        write_report(report, out)
    console.print(metrics_table(report))
    if out is not None:
        console.print(f"report written to {escape(str(out))}", highlight=False)
    errors = report.metrics["errors"]
    if errors:
        first = next(r for r in report.per_case if r.error is not None)
        console.print(
            f"[yellow]{errors} of {report.cases} cases failed[/] "
            f"(first: {escape(first.id)}: {escape(first.error or '')})",
            highlight=False,
        )
    if base is None:
        return 0
    gate = compare(report, base, max_drop, gate_latency=gate_latency)
    console.print(comparison_table(gate))
    for note in gate.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    return 0 if gate.passed else 1
