"""The local scorers on fixed cases whose expected values can be checked by hand, and their
place in the runner's report (scores merged per case, any metric aggregated)."""

from __future__ import annotations

import pytest

from groundgate.evals import rag_metrics, similarity
from groundgate.evals.answer_rules import pattern_matches, schema_check, strip_fence
from groundgate.evals.builtin_scorers import (
    ContextScorer,
    FaithfulnessScorer,
    RegexScorer,
    RelevanceScorer,
    SchemaScorer,
    SimilarityScorer,
    local_scorers,
)
from groundgate.evals.dataset import EvalCase
from groundgate.evals.runner import AnswerResult, run_eval

PASSAGES = [
    "Employees receive 28 days of paid vacation per year.",
    "Hotel costs are capped at 180 euros per night.",
    "Passwords must be rotated every 90 days.",
]
QUESTION = "How many days of paid vacation do employees receive?"
FAITHFUL = "Employees receive 28 days of paid vacation per year [1]."
INVENTED = "Employees get 45 days of vacation and a company car from Toyota."


def case(**fields: object) -> EvalCase:
    return EvalCase.model_validate({"id": "c", "question": QUESTION, **fields})


def answer(text: str, **fields: object) -> AnswerResult:
    return AnswerResult(text, abstained=bool(fields.pop("abstained", False)), **fields)  # type: ignore[arg-type]


# -- schema and regex ------------------------------------------------------------------------

SCHEMA = {"type": "object", "required": ["days"], "properties": {"days": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('{"days": 28}', True),
        ('```json\n{"days": 28}\n```', True),  # a fenced answer is read inside its fence
        ('{"days": "28"}', False),
        ("{}", False),
        ("28 days", False),
    ],
)
async def test_schema_validity(text: str, valid: bool) -> None:
    outcome = await SchemaScorer().score(case(schema=SCHEMA), answer(text))
    assert outcome.scores == {"schema_valid": float(valid)}
    assert bool(outcome.details.get("schema_errors")) is not valid


def test_schema_errors_name_the_path_not_the_value() -> None:
    check = schema_check('{"days": "secret-value"}', SCHEMA)
    assert not check.valid and check.errors == ("at $.days: type",)
    assert strip_fence("```\n[1]\n```") == "[1]" and strip_fence("plain") == "plain"


async def test_regex_matches_anywhere_unless_anchored() -> None:
    scorer = RegexScorer()
    assert (await scorer.score(case(pattern=r"\b28 days\b"), answer(FAITHFUL))).scores == {
        "regex_match": 1.0
    }
    anchored = case(pattern=r"^\d+ days$")
    assert (await scorer.score(anchored, answer(FAITHFUL))).scores == {"regex_match": 0.0}
    assert (await scorer.score(anchored, answer("28 days"))).scores == {"regex_match": 1.0}
    assert pattern_matches("PARIS", "(?i)paris")
    # A case without a pattern has no regex score at all.
    assert (await scorer.score(case(), answer("x"))).scores == {}


def test_a_backtracking_pattern_is_bounded_not_fatal() -> None:
    # A backreference after a nested quantifier backtracks exponentially in Python's re; the
    # engine gives up at its backtrack limit and reports no match.
    assert not pattern_matches("a" * 40 + "b", r"^(a+)+\1$")


def test_unusable_schema_or_pattern_is_refused_when_the_case_loads() -> None:
    with pytest.raises(ValueError, match="schema"):
        case(schema={"type": "no-such-type"})
    with pytest.raises(ValueError, match="not a regular expression"):
        case(pattern="(unclosed")


# -- similarity and relevance ----------------------------------------------------------------


async def test_similarity_orders_a_paraphrase_above_an_unrelated_answer() -> None:
    expected = ["28 days of paid vacation"]
    close = similarity.answer_similarity("Twenty-eight days of paid holiday", expected)
    far = similarity.answer_similarity("Passwords must be rotated every 90 days.", expected)
    exact = similarity.answer_similarity("28 days of paid vacation", expected)
    assert exact == pytest.approx(1.0, abs=1e-3) and exact > close > far
    scorer = SimilarityScorer()
    scored = await scorer.score(case(answers=expected), answer("28 days of paid vacation"))
    assert scored.scores["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert (await scorer.score(case(answers=expected), answer("", abstained=True))).scores == {
        "similarity": 0.0
    }
    assert (await scorer.score(case(), answer("x"))).scores == {}


async def test_answer_relevance_and_abstentions() -> None:
    scorer = RelevanceScorer()
    on_topic = (await scorer.score(case(), answer(FAITHFUL))).scores["answer_relevance"]
    off_topic = (await scorer.score(case(), answer(PASSAGES[1]))).scores["answer_relevance"]
    assert on_topic > 0.6 > off_topic
    # Abstaining on an answerable question answers nothing; on an unanswerable one it is
    # right, and relevance does not apply.
    assert (await scorer.score(case(), answer("", abstained=True))).scores == {
        "answer_relevance": 0.0
    }
    assert (await scorer.score(case(answerable=False), answer("", abstained=True))).scores == {}


# -- context precision and recall ------------------------------------------------------------


def test_context_precision_and_recall_by_id_by_hand() -> None:
    # Relevant at ranks 2 and 4: (1/2 + 2/4) / 2 = 0.5; both found: recall 1.
    retrieved = ["x", "r1", "y", "r2"]
    assert rag_metrics.context_precision(retrieved, ["r1", "r2"]) == pytest.approx(0.5)
    assert rag_metrics.context_recall(retrieved, ["r1", "r2"]) == 1.0
    # Relevant first: precision 1; one of two found: recall 0.5.
    assert rag_metrics.context_precision(["r1", "x", "r1"], ["r1", "r2"]) == 1.0
    assert rag_metrics.context_recall(["r1", "x"], ["r1", "r2"]) == 0.5
    assert rag_metrics.context_precision(["x"], ["r1"]) == 0.0
    assert rag_metrics.precision_of_flags([False, True, True]) == pytest.approx((1 / 2 + 2 / 3) / 2)


async def test_context_scorer_by_id_and_by_reference_text() -> None:
    scorer = ContextScorer()
    by_id = await scorer.score(case(relevant_ids=["r1"]), answer("x", retrieved_ids=["x", "r1"]))
    assert by_id.scores == {"context_precision": 0.5, "context_recall": 1.0}

    # Without ids: the vacation passage (ranked second) supports the reference, the hotel
    # one does not: precision 1/2; the one reference sentence is supported: recall 1.
    reference = case(reference_context=[PASSAGES[0]])
    found = await scorer.score(reference, answer("x", contexts=[PASSAGES[1], PASSAGES[0]]))
    assert found.scores == {"context_precision": 0.5, "context_recall": 1.0}
    # The answers serve as the reference too; here nothing retrieved holds them.
    missed = await scorer.score(case(answers=["28 days"]), answer("x", contexts=PASSAGES[1:]))
    assert missed.scores == {"context_precision": 0.0, "context_recall": 0.0}
    # Two reference sentences, one supported: recall 1/2.
    half = case(reference_context=[PASSAGES[0] + " The office is in Berlin."])
    scored = await scorer.score(half, answer("x", contexts=PASSAGES))
    assert scored.scores["context_recall"] == 0.5
    assert (await scorer.score(case(answerable=False), answer("x"))).scores == {}


# -- faithfulness ----------------------------------------------------------------------------


async def test_faithful_and_invented_answers() -> None:
    scorer = FaithfulnessScorer()
    faithful = await scorer.score(case(), answer(FAITHFUL, contexts=PASSAGES))
    assert faithful.scores == {"faithfulness": 1.0, "groundedness": 1.0}
    invented = await scorer.score(case(), answer(INVENTED, contexts=PASSAGES))
    assert invented.scores == {"faithfulness": 0.0, "groundedness": 0.0}
    assert invented.details == {"unsupported": [INVENTED]}
    mixed = await scorer.score(case(), answer(f"{FAITHFUL} {INVENTED}", contexts=PASSAGES))
    assert mixed.scores["faithfulness"] == 0.5
    # The answer-level score (what the benchmark's AUC is over) orders them the same way.
    assert rag_metrics.faithfulness_score(PASSAGES, FAITHFUL, QUESTION) > (
        rag_metrics.faithfulness_score(PASSAGES, INVENTED, QUESTION)
    )
    # No contexts, an abstention, or only "not in the documents": nothing to score.
    assert (await scorer.score(case(), answer(FAITHFUL))).scores == {}
    assert (await scorer.score(case(), answer("", contexts=PASSAGES, abstained=True))).scores == {}
    none = answer("I could not find the answer in the provided documents.", contexts=PASSAGES)
    assert (await scorer.score(case(), none)).scores == {}


# -- in the runner ---------------------------------------------------------------------------


async def test_run_eval_merges_scorer_metrics_into_cases_and_aggregate() -> None:
    cases = [
        case(id="good", answers=["28 days"], pattern="28", schema=None),
        EvalCase(id="bad", question="What is the hotel cap?", pattern="180"),
    ]

    async def answerer(c: EvalCase) -> AnswerResult:
        text = FAITHFUL if c.case_id == "good" else INVENTED
        return AnswerResult(text, abstained=False, contexts=PASSAGES)

    report = await run_eval(
        cases, answerer, progress=False, scorers=local_scorers(["regex", "faithfulness"])
    )
    good, bad = report.per_case
    assert good.scores["regex_match"] == 1.0 and bad.scores["regex_match"] == 0.0
    assert good.scores["faithfulness"] == 1.0 and bad.details == {"unsupported": [INVENTED]}
    assert report.metrics["regex_match"] == 0.5 and report.coverage["regex_match"] == 2
    assert report.metrics["faithfulness"] == 0.5 and report.metrics["f1"] is not None
    assert "scoring_cost_usd_total" not in report.metrics  # local scorers cost nothing


def test_local_scorers_by_name() -> None:
    assert [s.name for s in local_scorers()] == [
        "schema",
        "regex",
        "similarity",
        "context",
        "faithfulness",
        "relevance",
    ]
    assert [s.name for s in local_scorers(["relevance", "judge", "schema"])] == [
        "schema",
        "relevance",
    ]
    with pytest.raises(ValueError, match="unknown scorer bogus"):
        local_scorers(["bogus"])
