"""The runner: bounded concurrency, input order, per-case error capture, scoring and metrics."""

from __future__ import annotations

import asyncio

import pytest

from groundgate.evals.dataset import EvalCase
from groundgate.evals.runner import AnswerResult, aggregate, run_eval, score_case


def case(case_id: str, question: str = "q?", **fields: object) -> EvalCase:
    return EvalCase.model_validate({"id": case_id, "question": question, **fields})


class ScriptedAnswerer:
    """Answers from a script keyed by case id; tracks how many calls run at once."""

    def __init__(
        self,
        script: dict[str, AnswerResult | Exception] | None = None,
        delays: dict[str, float] | None = None,
    ) -> None:
        self.script = script or {}
        self.delays = delays or {}
        self.running = 0
        self.peak = 0
        self.calls: list[str] = []

    async def __call__(self, case: EvalCase) -> AnswerResult:
        self.calls.append(case.case_id)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delays.get(case.case_id, 0.01))
            outcome = self.script.get(case.case_id, AnswerResult("an answer", abstained=False))
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        finally:
            self.running -= 1


async def test_concurrency_is_bounded_and_reached() -> None:
    cases = [case(f"c{i}") for i in range(12)]
    answerer = ScriptedAnswerer()
    report = await run_eval(cases, answerer, concurrency=3, progress=False)
    assert answerer.peak == 3
    assert sorted(answerer.calls) == sorted(c.case_id for c in cases)
    assert report.cases == 12

    serial = ScriptedAnswerer()
    await run_eval(cases, serial, concurrency=1, progress=False)
    assert serial.peak == 1


async def test_results_keep_input_order_when_finishing_out_of_order() -> None:
    cases = [case(f"c{i}") for i in range(5)]
    # The first case is the slowest, the last the fastest.
    delays = {f"c{i}": 0.05 - i * 0.01 for i in range(5)}
    script: dict[str, AnswerResult | Exception] = {
        f"c{i}": AnswerResult(f"answer {i}", abstained=False) for i in range(5)
    }
    report = await run_eval(cases, ScriptedAnswerer(script, delays), concurrency=5, progress=False)
    assert [r.id for r in report.per_case] == [f"c{i}" for i in range(5)]
    assert [r.answer for r in report.per_case] == [f"answer {i}" for i in range(5)]


async def test_exceptions_are_recorded_per_case_and_score_zero() -> None:
    cases = [
        case("ok", answers=["Paris"], relevant_ids=["d1"], must_contain=["paris"]),
        case("boom", answers=["Paris"], relevant_ids=["d1"], must_contain=["paris"]),
    ]
    good = AnswerResult("Paris", abstained=False, retrieved_ids=["d1"], latency_ms=5.0)
    answerer = ScriptedAnswerer({"ok": good, "boom": RuntimeError("upstream exploded")})
    report = await run_eval(cases, answerer, progress=False)
    ok, boom = report.per_case
    assert ok.error is None and ok.scores["f1"] == 1.0
    assert boom.error == "RuntimeError: upstream exploded"
    assert boom.scores == {
        "exact": 0.0,
        "f1": 0.0,
        "rules_pass": 0.0,
        "abstention_accuracy": 0.0,
        "recall@10": 0.0,
        "mrr": 0.0,
        "ndcg@10": 0.0,
    }
    assert report.metrics["errors"] == 1
    assert report.metrics["f1"] == pytest.approx(0.5)
    # A failure's time is not a latency sample.
    assert report.coverage["latency_p50_ms"] == 1
    assert report.metrics["latency_p50_ms"] == pytest.approx(5.0)


async def test_timeouts_and_wrong_return_types_are_failures_not_crashes() -> None:
    class Odd:
        async def __call__(self, c: EvalCase) -> AnswerResult:
            if c.case_id == "slow":
                await asyncio.sleep(5)
            return "not a result"  # type: ignore[return-value]

    report = await run_eval([case("slow"), case("odd")], Odd(), progress=False, timeout_s=0.05)
    slow, odd = report.per_case
    assert slow.error == "timed out after 0.05s"
    assert odd.error is not None and "returned str" in odd.error
    assert report.metrics["errors"] == 2


async def test_cancellation_is_not_swallowed() -> None:
    answerer = ScriptedAnswerer(delays={"c": 5.0})
    task = asyncio.create_task(run_eval([case("c")], answerer, progress=False))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_score_case_coverage_rules() -> None:
    answered = AnswerResult("It is Paris.", abstained=False, retrieved_ids=["x", "d1"])
    unanswerable = case("u", answerable=False)
    scores = score_case(unanswerable, answered)
    assert scores == {"abstention_accuracy": 0.0}  # no F1/EM/rules/retrieval fields
    abstained = AnswerResult("I cannot answer.", abstained=True)
    assert score_case(unanswerable, abstained) == {"abstention_accuracy": 1.0}

    full = case("f", answers=["Paris", "the city of Paris"], relevant_ids=["d1"])
    scores = score_case(full, answered, k=1)
    assert scores["exact"] == 0.0
    assert scores["f1"] == pytest.approx(0.5)  # "it is paris" vs "paris": P 1/3, R 1
    assert scores["recall@1"] == 0.0 and scores["mrr"] == 0.0  # d1 is at rank 2 > k
    assert scores["ndcg@10"] == pytest.approx(1 / 1.584962500721156)  # 1 / log2(3)
    # An answerable case that abstained: F1 and EM are 0 even if the text overlaps.
    scores = score_case(full, AnswerResult("Paris", abstained=True))
    assert scores["exact"] == scores["f1"] == scores["abstention_accuracy"] == 0.0


async def test_metrics_and_coverage_of_a_mixed_run() -> None:
    cases = [
        case("a", answers=["Paris"], relevant_ids=["d1", "d2"]),
        case("b", answers=["Denver Broncos"]),
        case("c", answerable=False, must_not_contain=["secret"]),
        case("d", must_contain=["8080"]),  # answerable, but no gold answers
    ]
    script: dict[str, AnswerResult | Exception] = {
        "a": AnswerResult("Paris", False, ["d2", "x"], latency_ms=10, cost_usd=0.001),
        "b": AnswerResult("Broncos", False, [], latency_ms=20, cost_usd=0.002),
        "c": AnswerResult("no secret here", True, [], latency_ms=30, cost_usd=0.0),
        "d": AnswerResult("port 8080", False, [], latency_ms=40, cost_usd=0.003),
    }
    report = await run_eval(cases, ScriptedAnswerer(script), k=5, progress=False)
    m, cov = report.metrics, report.coverage
    assert m["exact"] == pytest.approx(0.5) and cov["exact"] == 2
    assert m["f1"] == pytest.approx((1 + 2 / 3) / 2) and cov["f1"] == 2
    assert m["rules_pass"] == pytest.approx(0.5) and cov["rules_pass"] == 2
    assert m["abstention_accuracy"] == 1.0 and cov["abstention_accuracy"] == 4
    assert m["recall@5"] == pytest.approx(0.5) and cov["recall@5"] == 1
    assert m["mrr"] == 1.0
    assert m["ndcg@10"] == pytest.approx(1 / (1 + 1 / 1.584962500721156))
    assert m["latency_p50_ms"] == pytest.approx(25.0)
    assert m["latency_p95_ms"] == pytest.approx(38.5)  # 30 + 0.85 * 10
    assert m["latency_mean_ms"] == pytest.approx(25.0)
    assert m["cost_usd_total"] == pytest.approx(0.006)
    assert m["cost_usd_mean"] == pytest.approx(0.0015)
    assert m["errors"] == 0
    assert report.k == 5 and "recall@10" not in m


def test_aggregate_reports_uncovered_metrics_as_none() -> None:
    metrics, coverage = aggregate([], k=3)
    for name in ("exact", "f1", "rules_pass", "recall@3", "mrr", "ndcg@10", "latency_p50_ms"):
        assert metrics[name] is None and coverage[name] == 0
    assert metrics["errors"] == 0 and metrics["cost_usd_total"] == 0.0


async def test_nonsense_latency_and_cost_are_replaced() -> None:
    script: dict[str, AnswerResult | Exception] = {
        "a": AnswerResult("x", False, latency_ms=float("nan"), cost_usd=-1.0)
    }
    report = await run_eval([case("a")], ScriptedAnswerer(script), progress=False)
    record = report.per_case[0]
    assert record.latency_ms >= 5.0  # the measured time (the fake sleeps 10 ms)
    assert record.cost_usd == 0.0


async def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await run_eval([case("a")], ScriptedAnswerer(), concurrency=0, progress=False)
    with pytest.raises(ValueError, match="k must"):
        await run_eval([case("a")], ScriptedAnswerer(), k=0, progress=False)


async def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    report = await run_eval([case("a"), case("b")], ScriptedAnswerer(), progress=True)
    assert report.cases == 2
    assert "eval" in capsys.readouterr().err


async def test_retries_recover_a_case_that_fails_once() -> None:
    class FailsOnce:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self, c: EvalCase) -> AnswerResult:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("upstream reset")
            return AnswerResult("Paris", abstained=False)

    cases = [case("fr", answers=["Paris"])]
    recovered = await run_eval(cases, FailsOnce(), progress=False, retry_backoff_s=0.01)
    (record,) = recovered.per_case
    assert record.error is None and record.attempts == 2 and record.scores["exact"] == 1.0
    assert recovered.answerer_calls == 2

    no_retry = await run_eval(cases, FailsOnce(), progress=False, retries=0)
    assert no_retry.per_case[0].error == "ConnectionError: upstream reset"
