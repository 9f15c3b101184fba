"""Run a dataset through an :class:`Answerer`, score each case and aggregate the report.

The answerer is whatever is under test (an app pipeline, a model, a remote gateway): the
harness only calls it and reads its :class:`AnswerResult`. Cases run with bounded concurrency;
an exception from the answerer is recorded on its case (which then scores 0 wherever a score
applies) and never stops the run. Results keep the dataset's order.

A failed case (an exception, a timeout, an error on its result) is tried again up to
``retries`` times, after ``retry_backoff_s`` doubling each time. Given an
:class:`~groundgate.evals.scoring.EvalCache` and an answerer that can say what its answers
depend on (:class:`~groundgate.evals.fingerprint.Fingerprinted`), answers are cached by
:func:`~groundgate.evals.cache.answer_key`: a re-run of unchanged cases calls nothing; the
cached cases are marked (``cached``) and keep the latency and cost recorded when they were
answered, while ``rerun_cost_usd`` and ``answerer_calls`` say what this run itself spent.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from groundgate.evals import scorers
from groundgate.evals.cache import answer_key
from groundgate.evals.compare import compare_runs, comparison_table, flips_table
from groundgate.evals.dataset import DatasetError, EvalCase, load_dataset
from groundgate.evals.fingerprint import Fingerprint, Fingerprinted, file_digest
from groundgate.evals.report import (
    CaseRecord,
    EvalReport,
    ReportError,
    load_report,
    metrics_table,
    write_report,
)
from groundgate.evals.scoring import EvalCache

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


@dataclass(slots=True)
class _Outcome:
    result: AnswerResult
    attempts: int = 1
    cached: bool = False


def _record(
    case: EvalCase, outcome: _Outcome, k: int, outcomes: Sequence[ScoreOutcome] = ()
) -> CaseRecord:
    result = outcome.result
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
        cached=outcome.cached,
        attempts=outcome.attempts,
    )
    for scored_by in outcomes:
        record.scores.update(scored_by.scores)
        record.scoring_cost_usd += scored_by.cost_usd
        record.scoring_calls += scored_by.upstream_calls
        record.details.update(scored_by.details)
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


async def _answer_with_retries(
    case: EvalCase,
    answerer: Answerer,
    timeout_s: float | None,
    retries: int,
    backoff_s: float,
) -> _Outcome:
    attempts = 0
    while True:
        attempts += 1
        result = await _answer_one(case, answerer, timeout_s)
        if result.error is None or attempts > retries:
            return _Outcome(result, attempts)
        await asyncio.sleep(backoff_s * 2 ** (attempts - 1))


def _cached_result(value: dict[str, object]) -> AnswerResult | None:
    try:
        result = AnswerResult(**value)  # type: ignore[arg-type]
    except TypeError:  # written by another version: a miss, not a crash
        return None
    return result if result.error is None else None


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
    retries: int = 1,
    retry_backoff_s: float = 0.2,
    cache: EvalCache | None = None,
    dataset_hash: str | None = None,
) -> EvalReport:
    """Answer every case (at most ``concurrency`` at once), score and aggregate.

    ``scorers`` (``evals/scoring.py``) score each case after its answer, within the same
    concurrency bound; their scores, cost and details go on the case.

    ``timeout_s`` bounds each attempt at a case (None: no bound beyond the answerer's own); a
    case still failing after ``retries`` more attempts is recorded as failed. With ``cache``,
    answers are reused when the answerer is :class:`Fingerprinted` (module docstring). With
    ``progress`` a Rich progress bar is drawn on stderr.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if retries < 0:
        raise ValueError(f"retries must be at least 0, got {retries}")
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    fingerprint: Fingerprint | None = None
    if isinstance(answerer, Fingerprinted):
        fingerprint = await answerer.fingerprint()
    # Without a fingerprint nothing says what an answer depends on: nothing is cached.
    scope = fingerprint.scope if fingerprint is not None and cache is not None else None
    semaphore = asyncio.Semaphore(concurrency)
    results: list[_Outcome | None] = [None] * len(cases)
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
            key = answer_key(case, scope) if scope is not None else None
            hit = cache.get(key) if cache is not None and key is not None else None
            cached = _cached_result(hit) if hit is not None else None
            if cached is not None:
                outcome = _Outcome(cached, attempts=0, cached=True)
                async with semaphore:
                    scored[index] = await _score_one(case, cached, scorers)
            else:
                async with semaphore:
                    outcome = await _answer_with_retries(
                        case, answerer, timeout_s, retries, retry_backoff_s
                    )
                    scored[index] = await _score_one(case, outcome.result, scorers)
                if cache is not None and key is not None and outcome.result.error is None:
                    cache.put(key, asdict(outcome.result))
            results[index] = outcome
            result = outcome.result
            failed += result.error is not None
            bar.update(task, advance=1, failed=failed)

        await asyncio.gather(*(run_one(i, case) for i, case in enumerate(cases)))

    records = []
    for case, maybe, outcomes in zip(cases, results, scored, strict=True):
        assert maybe is not None  # gather finished every case
        records.append(_record(case, maybe, k, outcomes))
    metrics, coverage = aggregate(records, k)
    report = EvalReport(
        dataset=dataset,
        app=app,
        created_at=created_at,
        cases=len(records),
        k=k,
        metrics=metrics,
        coverage=coverage,
        per_case=records,
        dataset_hash=dataset_hash,
        cached_cases=sum(r.cached for r in records),
        answerer_calls=sum(r.attempts for r in records),
        rerun_cost_usd=math.fsum(r.cost_usd for r in records if not r.cached),
    )
    if fingerprint is not None:
        report.config_digest = fingerprint.config_digest
        report.prompt_versions = dict(fingerprint.prompt_versions)
        report.model_versions = {m: list(d) for m, d in fingerprint.model_versions.items()}
        report.kb_version = fingerprint.kb_version
        report.variant = fingerprint.variant
    return report


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
    confidence: float = 0.95,
    retries: int = 1,
    cache: EvalCache | None = None,
    record: Callable[[EvalReport], Awaitable[str]] | None = None,
) -> int:
    """What ``groundgate eval`` does once it has an answerer: load and validate the dataset
    (and the baseline, before spending anything on the run), run, write the report, store it
    (``record`` returns the stored run's id), print the metrics and, given a baseline, the
    gate of :func:`groundgate.evals.compare.compare_runs` (a drop beyond ``max_drop`` that is
    significant at ``confidence``). Returns the exit code: 0 pass, 1 regression against the
    baseline, 2 bad input (dataset, baseline or options)."""
    console = console or Console()
    problems = []
    if not 0 < confidence < 1:
        problems.append(f"--confidence must be in (0, 1), got {confidence}")
    if retries < 0:
        problems.append(f"--retries must be at least 0, got {retries}")
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
        retries=retries,
        cache=cache,
        dataset_hash=file_digest(dataset_path),
    )
    if out is not None:
        write_report(report, out)
    console.print(metrics_table(report))
    if out is not None:
        console.print(f"report written to {escape(str(out))}", highlight=False)
    if report.cached_cases:
        console.print(
            f"{report.cached_cases} of {report.cases} cases from the eval cache (their latency "
            f"and cost are as recorded); this run: {report.answerer_calls} calls, "
            f"${report.rerun_cost_usd:.6f}",
            highlight=False,
        )
    if record is not None:
        run_id = await record(report)
        console.print(f"stored as run {escape(run_id)}", highlight=False)
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
    gate = compare_runs(
        base, report, max_drop=max_drop, confidence=confidence, gate_latency=gate_latency
    )
    console.print(comparison_table(gate, "base", "run"))
    flips = flips_table(gate)
    if flips is not None:
        console.print(flips)
    for note in gate.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    return 0 if gate.passed else 1
