"""Feedback on answers: a score, a label, a comment or a corrected answer about one trace,
given by a client (an end user through its app) or by a reviewer (``guards/review_queue.py``).

A row belongs to one tenant and one trace, and there is one per *source*: whoever gave it, as
the client names it (``"end-user:123"``, ``"review"``). Giving feedback again from the same
source replaces that row's fields (the last word counts; ``created_at`` stays), so a client may
retry or change its mind without duplicates. Writing what is already stored changes nothing
(not even ``updated_at``), and says so.

Scores are in [0, 1], higher is better: thumbs up is 1, down is 0, and 0.5 is neutral (a
1-5 rating maps as (r - 1) / 4). The range keeps Prometheus histograms whole (they drop
the sum when a bucket is negative) and matches eval scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

SCORE_MIN, SCORE_MAX, SCORE_NEUTRAL = 0.0, 1.0, 0.5
PutOutcome = Literal["created", "updated", "unchanged"]


@dataclass(slots=True)
class FeedbackRecord:
    tenant: str
    trace_id: str
    source: str  # who gave it, as the client names it; one row per (tenant, trace, source)
    target: str  # the app or model the trace's request called (exports filter on it)
    key_id: str | None  # the key that gave it (None: the bootstrap admin, open mode, the CLI)
    score: float | None  # in [SCORE_MIN, SCORE_MAX]; None: no verdict given
    label: str | None
    comment: str | None
    corrected_answer: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class FeedbackCursor:
    """Where a listing page ended: its last row's place in (created_at, trace_id, source)."""

    created_at: float
    trace_id: str
    source: str

    @staticmethod
    def after(record: FeedbackRecord) -> FeedbackCursor:
        return FeedbackCursor(record.created_at, record.trace_id, record.source)


class FeedbackStore(Protocol):
    async def put_feedback(self, feedback: FeedbackRecord) -> tuple[FeedbackRecord, PutOutcome]:
        """Insert the row, or replace the fields of the (tenant, trace_id, source) row; the
        row as stored (an existing row keeps its ``created_at``; an unchanged one its
        ``updated_at`` too) and what happened."""
        ...

    async def trace_feedback(self, tenant: str, trace_id: str) -> list[FeedbackRecord]:
        """Every source's feedback on one trace, oldest first."""
        ...

    async def list_feedback(
        self,
        tenant: str,
        *,
        target: str | None = None,
        since: float | None = None,
        after: FeedbackCursor | None = None,
        limit: int = 500,
    ) -> list[FeedbackRecord]:
        """The tenant's feedback (on ``target``'s traces; given at or after ``since``), oldest
        first in (created_at, trace_id, source) order, after ``after``."""
        ...


FEEDBACK_COLUMNS = (
    "tenant, trace_id, source, target, key_id, score, label, comment, corrected_answer,"
    " created_at, updated_at"
)
FEEDBACK_COLUMN_COUNT = 11
# The fields a repeat may change (``updated_at`` moves only when one of them does).
CHANGEABLE = ("target", "key_id", "score", "label", "comment", "corrected_answer")


def upsert_sql(placeholder: str, distinct: str) -> str:
    """The insert-or-replace statement; ``distinct`` is the backend's null-safe "differs"
    operator (SQLite ``IS NOT``, PostgreSQL ``IS DISTINCT FROM``). It returns the stored
    timestamps when it wrote, and no row when the repeat changed nothing."""
    values = ", ".join([placeholder] * FEEDBACK_COLUMN_COUNT)
    assignments = ", ".join(f"{c} = excluded.{c}" for c in (*CHANGEABLE, "updated_at"))
    changed = " OR ".join(f"feedback.{c} {distinct} excluded.{c}" for c in CHANGEABLE)
    return (
        f"INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES ({values})"
        f" ON CONFLICT (tenant, trace_id, source) DO UPDATE SET {assignments}"
        f" WHERE {changed} RETURNING created_at, updated_at"
    )


def select_one_sql(placeholder: str) -> str:
    return (
        f"SELECT {FEEDBACK_COLUMNS} FROM feedback"
        f" WHERE tenant = {placeholder} AND trace_id = {placeholder} AND source = {placeholder}"
    )


def _same(value: str) -> str:
    return value


def feedback_row(feedback: FeedbackRecord, text: Callable[[str], str] = _same) -> tuple[Any, ...]:
    """The record as a row in ``FEEDBACK_COLUMNS`` order; ``text`` makes a string storable
    (PostgreSQL text cannot hold NUL)."""

    def optional(value: str | None) -> str | None:
        return None if value is None else text(value)

    return (
        text(feedback.tenant),
        text(feedback.trace_id),
        text(feedback.source),
        text(feedback.target),
        optional(feedback.key_id),
        feedback.score,
        optional(feedback.label),
        optional(feedback.comment),
        optional(feedback.corrected_answer),
        feedback.created_at,
        feedback.updated_at,
    )


def feedback_from_row(row: Sequence[Any]) -> FeedbackRecord:
    return FeedbackRecord(
        tenant=row[0],
        trace_id=row[1],
        source=row[2],
        target=row[3],
        key_id=row[4],
        score=None if row[5] is None else float(row[5]),
        label=row[6],
        comment=row[7],
        corrected_answer=row[8],
        created_at=float(row[9]),
        updated_at=float(row[10]),
    )


def written(
    feedback: FeedbackRecord, returned: Sequence[Any] | None, existing: FeedbackRecord | None
) -> tuple[FeedbackRecord, PutOutcome]:
    """What ``put_feedback`` answers, from the upsert's returned timestamps (None: it changed
    nothing) or else the row as it already was."""
    if returned is None:
        assert existing is not None, "an upsert that wrote nothing left a row in place"
        return existing, "unchanged"
    created_at, updated_at = float(returned[0]), float(returned[1])
    stored = replace(feedback, created_at=created_at, updated_at=updated_at)
    return stored, "created" if created_at == feedback.created_at else "updated"


def list_sql(
    placeholder: str,
    *,
    target: str | None,
    since: float | None,
    after: FeedbackCursor | None,
) -> tuple[str, list[Any]]:
    """The listing's WHERE clause and parameters (the tenant's value first, then these); the
    caller adds the order and the limit."""
    where = [f"tenant = {placeholder}"]
    params: list[Any] = []
    if target is not None:
        where.append(f"target = {placeholder}")
        params.append(target)
    if since is not None:
        where.append(f"created_at >= {placeholder}")
        params.append(since)
    if after is not None:
        # Keyset pagination on the listing's total order: rows added meanwhile shift nothing.
        marks = ", ".join([placeholder] * 3)
        where.append(f"(created_at, trace_id, source) > ({marks})")
        params += [after.created_at, after.trace_id, after.source]
    return " AND ".join(where), params


async def every_feedback(
    store: FeedbackStore,
    tenant: str,
    *,
    target: str | None = None,
    since: float | None = None,
    page: int = 500,
) -> list[FeedbackRecord]:
    """All of the listing, page by page (oldest first)."""
    out: list[FeedbackRecord] = []
    after: FeedbackCursor | None = None
    while True:
        rows = await store.list_feedback(
            tenant, target=target, since=since, after=after, limit=page
        )
        out += rows
        if len(rows) < page:
            return out
        after = FeedbackCursor.after(rows[-1])


def mean_scores(records: Sequence[FeedbackRecord]) -> dict[str, float]:
    """Each trace's mean score over the sources that scored it (traces none scored are left
    out): what ``groundgate report ab`` compares variants on."""
    given: dict[str, list[float]] = {}
    for record in records:
        if record.score is not None:
            given.setdefault(record.trace_id, []).append(record.score)
    return {trace_id: sum(scores) / len(scores) for trace_id, scores in given.items()}
