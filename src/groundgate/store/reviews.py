"""The human review queue: answers held or audited for a reviewer (``guards/review_queue.py``
decides what goes in; ``pipeline/stages/review.py`` puts it there).

A review belongs to one tenant and every query names it, so one tenant never reads or decides
another's. A review is decided once: ``decide_review`` changes only a pending one, in one
conditional update, so two reviewers deciding at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

ReviewStatus = Literal["pending", "approved", "rejected"]
ReviewMode = Literal["hold", "audit"]
REVIEW_STATUSES: tuple[ReviewStatus, ...] = ("pending", "approved", "rejected")


@dataclass(slots=True)
class ReviewRecord:
    id: str
    tenant: str
    target: str  # the app or model the client called
    trace_id: str
    key_id: str | None  # the key that made the request (None: open mode, the bootstrap admin)
    created_at: float
    mode: ReviewMode
    reasons: list[str]  # why it is reviewed: guard names, "always", "tenant", "sampled", ...
    messages: list[dict[str, Any]]  # the request as sent upstream (guards already redacted it)
    answer: list[dict[str, Any]]  # the choices, as the client got (audit) or would get (hold) them
    guards: dict[str, Any]  # GuardReport.summary() when it was queued
    status: ReviewStatus = "pending"
    decided_at: float | None = None
    decided_by: str | None = None  # the deciding key's id, or "admin" / "cli"
    corrected_answer: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    status: Literal["approved", "rejected"]
    decided_at: float
    decided_by: str | None
    corrected_answer: str | None = None
    note: str | None = None


class ReviewStore(Protocol):
    async def add_review(self, review: ReviewRecord) -> None: ...

    async def get_review(self, tenant: str, review_id: str) -> ReviewRecord | None: ...

    async def list_reviews(
        self,
        tenant: str,
        *,
        status: ReviewStatus | None = None,
        target: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[ReviewRecord]:
        """Newest first (``created_at``, then ``id``, both descending); ``before`` is the
        (created_at, id) of the last review of the previous page."""
        ...

    async def decide_review(self, tenant: str, review_id: str, decision: Decision) -> bool:
        """Record the decision if the review is pending; False when there is no such pending
        review (none at all, another tenant's, or already decided)."""
        ...


REVIEW_COLUMNS = (
    "tenant, id, target, trace_id, key_id, created_at, status, mode, reasons, messages,"
    " answer, guards, decided_at, decided_by, corrected_answer, note"
)
REVIEW_COLUMN_COUNT = 16


def _same(value: str) -> str:
    return value


def review_row(
    review: ReviewRecord,
    json_value: Callable[[Any], Any],
    text: Callable[[str], str] = _same,
) -> tuple[Any, ...]:
    """The review as a row in ``REVIEW_COLUMNS`` order; backends differ in how a value becomes
    a JSON column (``json_value``) and how text is made storable (``text``)."""
    return (
        text(review.tenant),
        text(review.id),
        text(review.target),
        text(review.trace_id),
        None if review.key_id is None else text(review.key_id),
        review.created_at,
        review.status,
        review.mode,
        json_value(review.reasons),
        json_value(review.messages),
        json_value(review.answer),
        json_value(review.guards),
        review.decided_at,
        review.decided_by,
        None if review.corrected_answer is None else text(review.corrected_answer),
        None if review.note is None else text(review.note),
    )


def review_from_row(row: Sequence[Any], json_value: Callable[[Any], Any]) -> ReviewRecord:
    """A row in ``REVIEW_COLUMNS`` order as a review; ``json_value`` reads a JSON column."""
    return ReviewRecord(
        tenant=row[0],
        id=row[1],
        target=row[2],
        trace_id=row[3],
        key_id=row[4],
        created_at=row[5],
        status=row[6],
        mode=row[7],
        reasons=json_value(row[8]),
        messages=json_value(row[9]),
        answer=json_value(row[10]),
        guards=json_value(row[11]),
        decided_at=row[12],
        decided_by=row[13],
        corrected_answer=row[14],
        note=row[15],
    )
