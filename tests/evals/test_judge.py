"""The LLM judge and the dataset synthesiser against the fake upstream, in-process through a
real Container: the fake judge scores by a hidden rule read from the request body (an answer
that says "Paris" is the better one), so order swaps, unparseable replies, costs and the eval
cache are all exercised over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from groundgate.config import load_settings
from groundgate.container import Container
from groundgate.evals.dataset import EvalCase
from groundgate.evals.judge import (
    Judge,
    JudgeScorer,
    combine_orders,
    compare_reports,
    parse_json_reply,
    rubric_score,
)
from groundgate.evals.report import CaseRecord, EvalReport
from groundgate.evals.runner import AnswerResult, run_eval
from groundgate.evals.synth import LABEL, synthesize
from groundgate.retrieval.documents import SourceDocument
from groundgate.testing.fake_upstream import Behavior, FakeUpstream

CONFIG = """
[store]
path = "{tmp}/judge.db"
[cache]
enabled = false
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.judge]
deployments = ["up:judge-model"]
[prices."up:judge-model"]
input_per_mtok = 1000000.0
output_per_mtok = 0.0
"""
KEYWORD = "Paris"


@pytest.fixture(scope="module")
async def runtime(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream
) -> AsyncIterator[Container]:
    tmp = tmp_path_factory.mktemp("judge")
    path = tmp / "g.toml"
    path.write_text(CONFIG.format(tmp=tmp, fake=fake_upstream_server.url))
    built = Container(load_settings(path))
    await built.start()
    try:
        yield built
    finally:
        await built.stop()


def _user_text(body: Any) -> str:
    return str(body["messages"][-1]["content"])


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def fair_judge(path: str, body: Any) -> Behavior:
    """Prefers the answer with the keyword, wherever it is shown; scores by the same rule."""
    text = _user_text(body)
    if "[Answer A]" in text:
        a = KEYWORD in _between(text, "[Answer A]", "[End of answer A]")
        b = KEYWORD in _between(text, "[Answer B]", "[End of answer B]")
        winner = "tie" if a == b else ("A" if a else "B")
        return Behavior(content=f'Verdict: {{"winner": "{winner}", "reason": "keyword"}}')
    score = 5 if KEYWORD in _between(text, "Answer to score:", "\0") + "\0" else 1
    return Behavior(content=f'```json\n{{"score": {score}, "reason": "by the rule"}}\n```')


def first_position_judge(path: str, body: Any) -> Behavior:
    """Always prefers whatever is shown first: position bias, no judgement."""
    return Behavior(content='{"winner": "A"}')


class DictCache:
    def __init__(self) -> None:
        self.kept: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.kept.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.kept[key] = value


def test_reply_parsing_and_order_combination() -> None:
    assert parse_json_reply('sure! {"score": 4} and {"score": 1}') == {"score": 4}
    assert parse_json_reply('```json\n{"winner": "B"}\n```') == {"winner": "B"}
    assert parse_json_reply("no json {here") is None
    assert [rubric_score({"score": v}) for v in (4, 4.0, " 3 ", 6, 0, True, "x", 2.5)] == [
        4, 4, 3, None, None, None, None, None,
    ]  # fmt: skip
    # (A, B) then (B, A): "A" then "B" is a consistent preference for a; "A" twice flips.
    assert combine_orders("A", "B") == "a" and combine_orders("B", "A") == "b"
    assert combine_orders("A", "A") == "tie" and combine_orders("tie", "B") == "tie"


async def test_pairwise_both_orders_finds_the_better_answer_wherever_it_is_shown(
    runtime: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(fair_judge)
    judge = Judge(runtime, "judge")
    good, bad = "It is Paris.", "It is Lyon."
    first = await judge.pairwise("Capital of France?", good, bad)
    assert (first.winner, first.orders) == ("a", ("A", "B"))
    second = await judge.pairwise("Capital of France?", bad, good)
    assert (second.winner, second.orders) == ("b", ("B", "A"))
    assert first.prompt == "judge-pairwise@1" and first.upstream_calls == 2
    # Both orders reached the upstream: the better answer shown first, then second.
    shown = [_user_text(r.json) for r in fake_upstream.requests()[:2]]
    assert sorted(t.index(good) < t.index(bad) for t in shown) == [False, True]
    tie = await judge.pairwise("Capital of France?", bad, "It is Nice.")
    assert tie.winner == "tie"


async def test_an_inconsistent_judge_yields_ties(
    runtime: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(first_position_judge)
    verdict = await Judge(runtime, "judge").pairwise("Capital?", "It is Paris.", "It is Lyon.")
    assert (verdict.winner, verdict.orders) == ("tie", ("A", "A"))


async def test_rubric_scores_cost_and_prompt_version_then_a_cached_rerun_is_free(
    runtime: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(fair_judge)
    cache = DictCache()
    judge = Judge(runtime, "judge", cache=cache)
    cases = [
        EvalCase(id="good", question="Capital of France?", rubric="Names the capital."),
        EvalCase(id="bad", question="Capital of France?"),
    ]

    async def answerer(case: EvalCase) -> AnswerResult:
        text = "Paris." if case.case_id == "good" else "Lyon."
        return AnswerResult(text, abstained=False, contexts=["Paris is the capital."])

    report = await run_eval(cases, answerer, progress=False, scorers=[JudgeScorer(judge)])
    good, bad = report.per_case
    assert good.scores["judge"] == 1.0 and bad.scores["judge"] == 0.0
    assert good.details["judge"]["prompt"] == "judge-rubric@1"
    assert good.details["judge"]["score"] == 5 and good.details["judge"]["model"] == "judge"
    assert good.scoring_calls == 1 and good.scoring_cost_usd > 0  # priced by config
    assert report.metrics["scoring_upstream_calls"] == 2
    assert report.metrics["judge"] == 0.5
    # The case's rubric, the answer and the contexts reached the judge.
    sent = [_user_text(r.json) for r in fake_upstream.requests()]
    assert any("Names the capital." in t and "[1] Paris is the capital." in t for t in sent)

    calls_before = len(fake_upstream.requests())
    again = await run_eval(cases, answerer, progress=False, scorers=[JudgeScorer(judge)])
    assert len(fake_upstream.requests()) == calls_before  # no upstream call at all
    assert [r.scores["judge"] for r in again.per_case] == [1.0, 0.0]
    assert again.per_case[0].details["judge"]["cached"] is True
    assert again.per_case[0].scoring_cost_usd == 0 and again.per_case[0].scoring_calls == 0
    assert judge.tally.cached == 2 and judge.tally.upstream_calls == 2


async def test_unparseable_reply_gives_no_score_and_is_counted(
    runtime: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(content="I would rate this highly."))
    judge = Judge(runtime, "judge", cache=DictCache())
    scorer = JudgeScorer(judge)
    outcome = await scorer.score(EvalCase(question="q?"), AnswerResult("a", abstained=False))
    assert outcome.scores == {} and outcome.upstream_calls == 1
    assert outcome.details["judge"]["unparseable"] is True
    assert judge.tally.unparseable == 1 and judge.cache is not None
    assert judge.cache.get("anything") is None and not judge.cache.kept  # type: ignore[attr-defined]
    # An upstream failure is counted too, and is no crash.
    fake_upstream.set_default(Behavior(status=400))
    failed = await scorer.score(EvalCase(question="q?"), AnswerResult("a", abstained=False))
    assert failed.scores == {} and "error" in failed.details["judge"]
    assert judge.tally.failed == 1


def _report(answers: dict[str, str | None]) -> EvalReport:
    records = [
        CaseRecord(id=i, question="Capital of France?", answer=a or "", error=None if a else "x")
        for i, a in answers.items()
    ]
    return EvalReport(
        created_at="now", cases=len(records), metrics={}, coverage={}, per_case=records
    )


async def test_two_reports_compared_case_by_case(
    runtime: Container, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.respond_with(fair_judge)
    report_a = _report({"w": "Paris.", "l": "Lyon.", "t": "Nice.", "f": "Paris.", "a": "x"})
    report_b = _report({"w": "Lyon.", "l": "Paris!", "t": "Metz.", "f": None, "b": "y"})
    summary = await compare_reports(Judge(runtime, "judge"), report_a, report_b)
    assert (summary.wins, summary.losses, summary.ties, summary.unjudged) == (1, 1, 1, 3)
    verdicts = {c.id: (c.winner, c.note) for c in summary.cases}
    assert verdicts == {
        "w": ("a", ""),
        "l": ("b", ""),
        "t": ("tie", ""),
        "f": (None, "an answer failed"),
        "a": (None, "only in report A"),
        "b": (None, "only in report B"),
    }
    assert summary.upstream_calls == 6 and summary.cost_usd > 0
    assert summary.prompt == "judge-pairwise@1"


# -- synthesis -------------------------------------------------------------------------------

DOCS = [
    SourceDocument(
        id="hr.md",
        title="HR",
        text="Employees receive 28 days of paid vacation per year, taken in agreement "
        "with their manager.",
    ),
    SourceDocument(
        id="travel.md",
        title="Travel",
        text="Hotel costs are capped at 180 euros per night, breakfast included.",
    ),
    SourceDocument(
        id="it.md",
        title="IT",
        text="Passwords must be rotated every 90 days and never shared with anyone.",
    ),
]


def drafting_model(path: str, body: Any) -> Behavior:
    """Writes a case from the passage, except for the travel one (not JSON)."""
    text = _user_text(body)
    if "Hotel" in text:
        return Behavior(content="Here is a question about hotels!")
    topic = "vacation" if "vacation" in text else "passwords"
    return Behavior(content=json.dumps({"question": f"What about {topic}?", "answer": topic}))


async def test_synth_drafts_labelled_cases_and_skips_bad_replies(
    runtime: Container, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    await runtime.ingestor("handbook").ingest("default", "handbook", DOCS)
    fake_upstream.respond_with(drafting_model)
    progress: list[tuple[int, int]] = []
    result = await synthesize(
        runtime, "handbook", "judge", 5, seed=7, on_progress=lambda *p: progress.append(p)
    )
    assert result.chunks == 3 and result.skipped == {"unparseable": 1}
    assert result.upstream_calls == 3 and result.cost_usd > 0 and len(progress) == 3
    assert result.prompt == "eval-synth@1"
    by_doc = {c["relevant_ids"][0]: c for c in result.cases}
    assert set(by_doc) == {"hr.md", "it.md"}
    vacation = by_doc["hr.md"]
    assert vacation["question"] == "What about vacation?" and vacation["answers"] == ["vacation"]
    assert vacation["label"] == LABEL and "28 days" in vacation["reference_context"][0]
    # What it writes is a dataset `groundgate eval` reads.
    path = tmp_path / "drafts.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in result.cases))
    from groundgate.evals.dataset import load_dataset

    assert len(load_dataset(path)) == 2
    # The same seed samples the same chunks.
    again = await synthesize(runtime, "handbook", "judge", 1, seed=7)
    other = await synthesize(runtime, "handbook", "judge", 1, seed=7)
    assert again.cases == other.cases
