"""Feedback as Prometheus metrics, on the gateway's registry (``observe/metrics.py``): what
was given, per app or model, and the scores' distribution. Counted when a source's feedback is
new or changed (a repeat of the same feedback changes nothing, so it counts nothing).

Labels are bounded: the target is an app or model that config names (else ``unknown``), the
kind one of four verdicts; the source, a client's free text, is never a label.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from groundgate.store.feedback import SCORE_NEUTRAL, FeedbackRecord

# Thumbs down lands in the first bucket, neutral in the third, thumbs up in the last.
SCORE_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0)


def verdict(score: float | None) -> str:
    if score is None:
        return "unscored"
    if score == SCORE_NEUTRAL:
        return "neutral"
    return "positive" if score > SCORE_NEUTRAL else "negative"


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry, known_targets: Callable[[str], bool]) -> None:
        self._known = known_targets
        self.given = Counter(
            "groundgate_feedback",
            "Feedback written (new, or changed by its source) by app or model and verdict "
            "(positive, negative, neutral, unscored).",
            ["target", "kind"],
            registry=registry,
        )
        self.scores = Histogram(
            "groundgate_feedback_score",
            "Feedback scores, in [0, 1] (thumbs up 1, down 0), by app or model.",
            ["target"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.corrections = Counter(
            "groundgate_feedback_corrections",
            "Feedback that gave a corrected answer, by app or model.",
            ["target"],
            registry=registry,
        )

    def observe(self, feedback: FeedbackRecord) -> None:
        target = feedback.target if self._known(feedback.target) else "unknown"
        self.given.labels(target, verdict(feedback.score)).inc()
        if feedback.score is not None:
            self.scores.labels(target).observe(feedback.score)
        if feedback.corrected_answer is not None:
            self.corrections.labels(target).inc()
