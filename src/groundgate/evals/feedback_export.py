"""Feedback as an eval dataset (``groundgate datasets export --feedback``): one case per trace
that was given feedback, in the JSONL format ``evals/dataset.py`` reads, so ``groundgate eval``
runs it.

A case's question is what the trace kept (an app's search query, or a plain model's question
when ``feedback.keep_text = "all"``); its expected answer is a corrected answer where a source
gave one (the newest), else the answer the gateway gave when the trace's mean score is above
neutral (0.5). Kept, not scored: that answer, the retrieved passages' text (where the
knowledge base still holds them), every label given, and the mean score. A trace without a
question, or without anything to expect (scored neutral or below with no correction), is
skipped and counted; so is one that retention has pruned since.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from groundgate.store.base import Store
from groundgate.store.feedback import (
    SCORE_NEUTRAL,
    FeedbackRecord,
    every_feedback,
    mean_scores,
)

# Why a trace with feedback made no case.
SKIP_REASONS = ("trace_gone", "no_question", "nothing_expected", "below_min_score")


@dataclass(slots=True)
class FeedbackExport:
    cases: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def feedback_case(
    trace: dict[str, Any], given: Sequence[FeedbackRecord], context: Sequence[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """One trace and its feedback as an eval case, or None and why not."""
    attrs = trace.get("attrs") or {}
    question = attrs.get("query") or attrs.get("question")
    if not isinstance(question, str) or not question.strip():
        return None, "no_question"
    answer = attrs.get("answer") if isinstance(attrs.get("answer"), str) else None
    score = mean_scores(given).get(str(trace.get("id")))
    corrections = sorted(
        (g for g in given if g.corrected_answer and g.corrected_answer.strip()),
        key=lambda g: g.updated_at,
    )
    expected = corrections[-1].corrected_answer if corrections else None
    if (
        expected is None
        and score is not None
        and score > SCORE_NEUTRAL
        and answer
        and answer.strip()
    ):
        expected = answer
    if expected is None:
        return None, "nothing_expected"
    case: dict[str, Any] = {
        "id": trace["id"],
        "question": question,
        "answers": [expected],
        "label": "feedback",
    }
    if answer is not None:
        case["answer"] = answer
    if context:
        case["context"] = list(context)
    labels = sorted({g.label for g in given if g.label})
    if labels:
        case["labels"] = labels
    if score is not None:
        case["score"] = round(score, 6)
    return case, None


async def export_feedback(
    store: Store,
    tenant: str,
    *,
    target: str | None = None,
    since: float | None = None,
    min_score: float | None = None,
) -> FeedbackExport:
    """The tenant's feedback (on ``target``; given since ``since``) as eval cases, in the
    order it was first given; ``min_score``: only traces whose mean score is at least this
    (a trace nobody scored is left out then)."""
    by_trace: dict[str, list[FeedbackRecord]] = {}
    for record in await every_feedback(store.feedback, tenant, target=target, since=since):
        by_trace.setdefault(record.trace_id, []).append(record)
    export = FeedbackExport()
    for trace_id, given in by_trace.items():
        score = mean_scores(given).get(trace_id)
        if min_score is not None and (score is None or score < min_score):
            export.skipped["below_min_score"] += 1
            continue
        trace = await store.get_trace(tenant, trace_id)
        if trace is None:
            export.skipped["trace_gone"] += 1
            continue
        case, why = feedback_case(trace, given, await _context(store, tenant, trace))
        if case is None:
            export.skipped[why or "nothing_expected"] += 1
        else:
            export.cases.append(case)
    return export


async def _context(store: Store, tenant: str, trace: dict[str, Any]) -> list[str]:
    """The text of the passages the answer was grounded on, in retrieval order (those the
    knowledge base still holds)."""
    retrieval = (trace.get("attrs") or {}).get("retrieval") or {}
    kb = retrieval.get("knowledge_base")
    ids = [p["chunk_id"] for p in retrieval.get("passages", ()) if isinstance(p, dict)]
    if not isinstance(kb, str) or not ids:
        return []
    chunks = {c.id: c.text for c in await store.knowledge.get_chunks(tenant, kb, ids)}
    return [chunks[i] for i in ids if i in chunks]
