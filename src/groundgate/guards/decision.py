"""What the guards decided about one request: each decision with its score and latency, for
the trace, the metrics, the ``x-groundgate-guards`` header and the response's
``groundgate.guards``; and what the review stage needs to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class GuardDecision:
    guard: str  # injection, passages, secrets, pii, topics, limits, schema, leak, policy, ...
    action: str  # what was done: flag, redact, block, review, fence, drop, remove, abstain
    score: float | None = None  # the guard's score, where it has one (a probability, a cosine)
    latency_ms: float = 0.0
    # What it found, never the text itself: counts by type, rule names, a topic's name.
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"guard": self.guard, "action": self.action}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        out["latency_ms"] = round(self.latency_ms, 3)
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(slots=True)
class GuardReport:
    """Every guard decision of one request (only those that fired: a guard that found nothing
    adds its latency to ``checked_ms`` and nothing else)."""

    decisions: list[GuardDecision] = field(default_factory=list)
    checked_ms: dict[str, float] = field(default_factory=dict)  # guard -> time spent
    # Grounded answers: the answer's groundedness score and the sentences found unsupported.
    groundedness: float | None = None
    unsupported: list[str] = field(default_factory=list)
    # Set by the review stage: the queued review's id and the mode it was queued in.
    review_id: str | None = None
    review_mode: str | None = None

    def add(self, decision: GuardDecision) -> None:
        self.decisions.append(decision)

    def timed(self, guard: str, ms: float) -> None:
        self.checked_ms[guard] = self.checked_ms.get(guard, 0.0) + ms

    @property
    def review_requested(self) -> bool:
        """A guard asked for the answer to be reviewed."""
        return any(d.action == "review" for d in self.decisions)

    def header(self) -> str:
        """``x-groundgate-guards``: ``guard=action`` for each decision, in order."""
        return ",".join(f"{d.guard}={d.action}" for d in self.decisions)

    def summary(self) -> dict[str, Any]:
        """The response's ``groundgate.guards`` and the trace's ``guards`` attribute."""
        out: dict[str, Any] = {"decisions": [d.to_dict() for d in self.decisions]}
        if self.checked_ms:
            out["checked_ms"] = {k: round(v, 3) for k, v in self.checked_ms.items()}
        if self.groundedness is not None:
            out["groundedness"] = round(self.groundedness, 4)
            out["unsupported"] = self.unsupported
        if self.review_id is not None:
            out["review"] = {"id": self.review_id, "mode": self.review_mode}
        return out
