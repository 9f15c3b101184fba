"""Giving feedback: the one way into the feedback store (``store/feedback.py``), for the
``POST /v1/feedback`` route and for the review queue's decisions alike. Text is scrubbed of
credentials before it is stored, as traces are; what was written is counted
(``feedback_metrics.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from groundgate.observe.feedback_metrics import FeedbackMetrics
from groundgate.observe.redact import redact
from groundgate.store.feedback import FeedbackRecord, FeedbackStore, PutOutcome

# The source review decisions are recorded under (guards/review_queue.py).
REVIEW_SOURCE = "review"


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a source says about one trace."""

    score: float | None = None
    label: str | None = None
    comment: str | None = None
    corrected_answer: str | None = None


class FeedbackRecorder:
    def __init__(
        self,
        store: FeedbackStore,
        metrics: FeedbackMetrics | None = None,
        clock: Callable[[], float] = time.time,
        on_score: Callable[[str, float], None] | None = None,
    ) -> None:
        """``on_score(target, score)``: told of every new score (the drift monitor's
        feedback window)."""
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.on_score = on_score

    async def give(
        self,
        *,
        tenant: str,
        trace_id: str,
        target: str,
        source: str,
        key_id: str | None,
        feedback: Feedback,
    ) -> tuple[FeedbackRecord, PutOutcome]:
        """Store ``source``'s feedback on the trace (replacing what it said before)."""
        now = self.clock()
        record = FeedbackRecord(
            tenant=tenant,
            trace_id=trace_id,
            source=redact(source),
            target=target,
            key_id=key_id,
            score=feedback.score,
            label=_scrubbed(feedback.label),
            comment=_scrubbed(feedback.comment),
            corrected_answer=_scrubbed(feedback.corrected_answer),
            created_at=now,
            updated_at=now,
        )
        stored, outcome = await self.store.put_feedback(record)
        if outcome != "unchanged":
            if self.metrics is not None:
                self.metrics.observe(stored)
            if self.on_score is not None and stored.score is not None:
                self.on_score(target, stored.score)
        return stored, outcome

    async def of_trace(self, tenant: str, trace_id: str) -> list[FeedbackRecord]:
        return await self.store.trace_feedback(tenant, trace_id)


def _scrubbed(text: str | None) -> str | None:
    return None if text is None else redact(text)
