"""How a trace's feedback from several sources becomes one eval case."""

from __future__ import annotations

import json

from groundgate.evals.dataset import parse_dataset
from groundgate.evals.feedback_export import feedback_case
from groundgate.store.feedback import FeedbackRecord

TRACE = {"id": "t1", "attrs": {"query": "How long?", "answer": "Thirty days."}}


def given(source: str, score: float | None, at: float, **kw: str) -> FeedbackRecord:
    return FeedbackRecord(
        "acme", "t1", source, "bot", None, score, kw.get("label"), None,
        kw.get("corrected_answer"), at, at,
    )  # fmt: skip


def test_the_sources_mean_score_decides_whether_the_answer_is_expected() -> None:
    split = [given("a", 1.0, 1), given("b", 0.0, 2)]  # neutral on the whole: nothing to expect
    assert feedback_case(TRACE, split, []) == (None, "nothing_expected")
    leaning = [given("a", 1.0, 1), given("b", 0.25, 2, label="terse"), given("c", None, 3)]
    case, _ = feedback_case(TRACE, leaning, ["Refunds take thirty days."])
    assert case is not None
    assert case["answers"] == ["Thirty days."] and case["score"] == 0.625
    assert case["labels"] == ["terse"] and case["context"] == ["Refunds take thirty days."]
    [parsed] = parse_dataset([json.dumps(case)])  # a case `groundgate eval` reads
    assert parsed.answer == "Thirty days." and parsed.id == "t1"


def test_the_newest_correction_is_expected_whatever_the_scores() -> None:
    corrected = [
        given("review", 0.0, 5, corrected_answer="Fourteen days."),
        given("user", 1.0, 1, corrected_answer="Two weeks."),
    ]
    case, _ = feedback_case(TRACE, corrected, [])
    assert case is not None and case["answers"] == ["Fourteen days."]
    assert feedback_case({"id": "t1", "attrs": {}}, corrected, []) == (None, "no_question")
