"""One conformance suite for every FeedbackStore backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

from groundgate.store.base import Store
from groundgate.store.feedback import FeedbackCursor, FeedbackRecord

TRACE = "a" * 32


def feedback(**kw: object) -> FeedbackRecord:
    fields: dict[str, object] = {
        "tenant": "acme",
        "trace_id": TRACE,
        "source": "end-user:42",
        "target": "support-bot",
        "key_id": "abcdefghijkm",
        "score": 1.0,
        "label": "helpful",
        "comment": "Très bien \u2028 merci",
        "corrected_answer": None,
        "created_at": 1000.0,
        "updated_at": 1000.0,
        **kw,
    }
    return FeedbackRecord(**fields)  # type: ignore[arg-type]


async def test_feedback_is_one_row_per_source_and_the_last_word_counts(store: Store) -> None:
    first = feedback()
    stored, outcome = await store.feedback.put_feedback(first)
    assert outcome == "created" and stored == first
    # The same again: nothing changes, not even the time it was updated.
    again, outcome = await store.feedback.put_feedback(
        dataclasses.replace(first, created_at=1005.0, updated_at=1005.0)
    )
    assert outcome == "unchanged" and again == first
    # A change of mind from the same source replaces its fields and keeps when it was given.
    changed = dataclasses.replace(
        first,
        score=0.0,
        label=None,
        comment=None,
        corrected_answer="Refunds take 14 days.",
        created_at=1010.0,
        updated_at=1010.0,
    )
    stored, outcome = await store.feedback.put_feedback(changed)
    assert outcome == "updated"
    assert stored == dataclasses.replace(changed, created_at=1000.0)
    # Another source on the same trace is a row of its own.
    reviewer = feedback(source="review", key_id=None, score=None, created_at=1001.0)
    assert (await store.feedback.put_feedback(reviewer))[1] == "created"
    rows = await store.feedback.trace_feedback("acme", TRACE)
    assert rows == [dataclasses.replace(changed, created_at=1000.0), reviewer]


async def test_one_tenant_never_reads_anothers_feedback(store: Store) -> None:
    await store.feedback.put_feedback(feedback())
    # The same trace id and source in another tenant is another row.
    theirs = feedback(tenant="globex", score=0.5)
    assert (await store.feedback.put_feedback(theirs))[1] == "created"
    assert await store.feedback.trace_feedback("globex", TRACE) == [theirs]
    assert [r.score for r in await store.feedback.list_feedback("acme")] == [1.0]
    assert await store.feedback.trace_feedback("initech", TRACE) == []
    assert await store.feedback.list_feedback("initech") == []


async def test_listing_filters_and_pages_in_a_stable_order(store: Store) -> None:
    rows = [
        feedback(trace_id=f"{i:032x}", target="bot" if i % 2 else "other", created_at=2000.0 + i)
        for i in range(7)
    ]
    rows.append(feedback(trace_id=f"{3:032x}", source="b", target="bot", created_at=2003.0))
    for row in reversed(rows):
        await store.feedback.put_feedback(row)
    in_order = sorted(rows, key=lambda r: (r.created_at, r.trace_id, r.source))
    assert await store.feedback.list_feedback("acme") == in_order

    pages: list[FeedbackRecord] = []
    cursor: FeedbackCursor | None = None
    while True:
        page = await store.feedback.list_feedback("acme", after=cursor, limit=3)
        pages += page
        if len(page) < 3:
            break
        cursor = FeedbackCursor.after(page[-1])
    assert pages == in_order

    bots = await store.feedback.list_feedback("acme", target="bot", since=2003.0)
    assert [(r.trace_id[-1], r.source) for r in bots] == [
        ("3", "b"),
        ("3", "end-user:42"),
        ("5", "end-user:42"),
    ]
