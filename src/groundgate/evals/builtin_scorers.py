"""The local scorers ``groundgate eval --score NAME`` adds to the built-in metrics, each a
:class:`~groundgate.evals.scoring.CaseScorer` (the LLM judge is in ``judge.py``).

=============  ==========================================  ===================================
``--score``    metrics                                     cases covered
=============  ==========================================  ===================================
schema         schema_valid                                cases with ``schema``
regex          regex_match                                 cases with ``pattern``
similarity     similarity                                  answerable cases with ``answers``
context        context_precision, context_recall           cases with ``relevant_ids``, or with
                                                           ``reference_context`` or ``answers``
faithfulness   faithfulness (share of claims supported),   answers (not abstentions) with
               groundedness (answer-level score)           retrieved contexts and a claim
relevance      answer_relevance                            answerable cases
judge          judge (rubric 1..5 as 0..1)                 every case (``--judge MODEL``)
=============  ==========================================  ===================================

As for the built-in metrics, a case whose answer failed scores 0 on the metrics that apply to
it, and an abstention scores 0 on those that need an answer. Faithfulness is the exception: a
failed or abstaining case made no claim, so it has no faithfulness rather than a perfect one.
The embedding work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from groundgate.evals import rag_metrics, similarity
from groundgate.evals.answer_rules import pattern_matches, schema_check
from groundgate.evals.dataset import EvalCase
from groundgate.evals.runner import AnswerResult
from groundgate.evals.scoring import CaseScorer, ScoreOutcome

# Unsupported sentences kept on a case in the report (the first ones).
MAX_SHOWN = 3


def _none() -> ScoreOutcome:
    return ScoreOutcome({})


def _no_answer(result: AnswerResult) -> bool:
    return result.error is not None or result.abstained


class SchemaScorer:
    name = "schema"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        if case.answer_schema is None:
            return _none()
        if _no_answer(result):
            return ScoreOutcome({"schema_valid": 0.0})
        check = schema_check(result.answer, case.answer_schema)
        details = {} if check.valid else {"schema_errors": list(check.errors)}
        return ScoreOutcome({"schema_valid": float(check.valid)}, details=details)


class RegexScorer:
    name = "regex"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        if case.pattern is None:
            return _none()
        matched = result.error is None and pattern_matches(result.answer, case.pattern)
        return ScoreOutcome({"regex_match": float(matched)})


class SimilarityScorer:
    name = "similarity"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        if not (case.answerable and case.answers):
            return _none()
        if _no_answer(result):
            return ScoreOutcome({"similarity": 0.0})
        value = await asyncio.to_thread(similarity.answer_similarity, result.answer, case.answers)
        return ScoreOutcome({"similarity": value})


def _references(case: EvalCase) -> list[str]:
    return list(case.reference_context) or (list(case.answers) if case.answerable else [])


def context_scores(case: EvalCase, result: AnswerResult) -> dict[str, float]:
    """Context precision and recall of ``result`` for ``case`` (blocking; none when the case
    has neither relevant ids nor reference text)."""
    failed = result.error is not None
    if case.relevant_ids:
        retrieved = [] if failed else result.retrieved_ids
        return {
            "context_precision": rag_metrics.context_precision(retrieved, case.relevant_ids),
            "context_recall": rag_metrics.context_recall(retrieved, case.relevant_ids),
        }
    references = _references(case)
    if not rag_metrics.reference_sentences(references):
        return {}
    contexts = [] if failed else result.contexts
    if not contexts:
        return {"context_precision": 0.0, "context_recall": 0.0}
    flags = rag_metrics.reference_relevance(contexts, references)
    return {
        "context_precision": rag_metrics.precision_of_flags(flags),
        "context_recall": rag_metrics.reference_recall(contexts, references),
    }


class ContextScorer:
    name = "context"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        return ScoreOutcome(await asyncio.to_thread(context_scores, case, result))


class FaithfulnessScorer:
    name = "faithfulness"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        if _no_answer(result) or not result.contexts:
            return _none()
        verdict = await asyncio.to_thread(
            rag_metrics.faithfulness, result.contexts, result.answer, case.question
        )
        if verdict.share is None:  # no claim: nothing to be faithful about
            return _none()
        unsupported = verdict.unsupported[:MAX_SHOWN]
        return ScoreOutcome(
            {"faithfulness": verdict.share, "groundedness": verdict.score},
            details={"unsupported": unsupported} if unsupported else {},
        )


class RelevanceScorer:
    name = "relevance"

    async def score(self, case: EvalCase, result: AnswerResult) -> ScoreOutcome:
        if not case.answerable:  # abstaining is right there; abstention_accuracy says so
            return _none()
        if _no_answer(result):  # the question was not answered
            return ScoreOutcome({"answer_relevance": 0.0})
        value = await asyncio.to_thread(similarity.answer_relevance, case.question, result.answer)
        return ScoreOutcome({"answer_relevance": value})


LOCAL_SCORERS: dict[str, type[CaseScorer]] = {
    "schema": SchemaScorer,
    "regex": RegexScorer,
    "similarity": SimilarityScorer,
    "context": ContextScorer,
    "faithfulness": FaithfulnessScorer,
    "relevance": RelevanceScorer,
}
# What ``--score`` accepts: the local scorers, and the judge (which needs ``--judge MODEL``).
SCORER_NAMES = (*LOCAL_SCORERS, "judge")
# The metrics these scorers add: all quality shares in [0, 1], higher is better (the gate,
# ``compare.py``, treats them as it treats f1).
SCORER_METRICS = (
    "schema_valid",
    "regex_match",
    "similarity",
    "context_precision",
    "context_recall",
    "faithfulness",
    "groundedness",
    "answer_relevance",
    "judge",
)


def local_scorers(names: Sequence[str] | None = None) -> list[CaseScorer]:
    """The local scorers named (all of them for None), in ``SCORER_NAMES`` order. Raises
    ``ValueError`` naming an unknown one; "judge" is skipped (``judge.JudgeScorer``)."""
    unknown = sorted(set(names or ()) - set(SCORER_NAMES))
    if unknown:
        raise ValueError(f"unknown scorer {', '.join(unknown)} (known: {', '.join(SCORER_NAMES)})")
    wanted = set(LOCAL_SCORERS if names is None else names)
    return [cls() for name, cls in LOCAL_SCORERS.items() if name in wanted]
