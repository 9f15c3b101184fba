"""One conformance suite for every ReviewStore backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses

from groundgate.guards.review_queue import new_review_id
from groundgate.store.base import Store
from groundgate.store.reviews import Decision, ReviewRecord


def review(tenant: str = "acme", created_at: float = 1000.0, **kw: object) -> ReviewRecord:
    fields: dict[str, object] = {
        "id": new_review_id(),
        "tenant": tenant,
        "target": "support-bot",
        "trace_id": "t" * 32,
        "key_id": "abcdefghijkm",
        "created_at": created_at,
        "mode": "hold",
        "reasons": ["injection", "sampled"],
        "messages": [{"role": "user", "content": "Où est ma commande ? \u2028 [EMAIL_1]"}],
        "answer": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Ici."},
                "finish_reason": "stop",
            }
        ],
        "guards": {"decisions": [{"guard": "injection", "action": "review", "score": 0.93}]},
        **kw,
    }
    return ReviewRecord(**fields)  # type: ignore[arg-type]


async def test_a_review_round_trips_every_field(store: Store) -> None:
    queued = review()
    await store.reviews.add_review(queued)
    assert await store.reviews.get_review("acme", queued.id) == queued
    decided = dataclasses.replace(
        review(key_id=None, mode="audit"),
        status="approved",
        decided_at=2000.5,
        decided_by="cli",
        corrected_answer="Chez vous.",
        note="ok",
    )
    await store.reviews.add_review(decided)
    assert await store.reviews.get_review("acme", decided.id) == decided


async def test_one_tenant_never_reads_or_decides_anothers(store: Store) -> None:
    theirs = review(tenant="acme")
    await store.reviews.add_review(theirs)
    assert await store.reviews.get_review("globex", theirs.id) is None
    assert await store.reviews.list_reviews("globex") == []
    decision = Decision("approved", 2000.0, "k")
    assert not await store.reviews.decide_review("globex", theirs.id, decision)
    still = await store.reviews.get_review("acme", theirs.id)
    assert still is not None and still.status == "pending"


async def test_a_review_is_decided_once(store: Store) -> None:
    queued = review()
    await store.reviews.add_review(queued)
    first = Decision("rejected", 2000.0, "k1", corrected_answer="Better.", note="wrong")
    second = Decision("approved", 3000.0, "k2")
    results = await asyncio.gather(
        store.reviews.decide_review("acme", queued.id, first),
        store.reviews.decide_review("acme", queued.id, second),
    )
    assert sorted(results) == [False, True]  # two reviewers at once: exactly one wins
    stored = await store.reviews.get_review("acme", queued.id)
    assert stored is not None
    winner = first if stored.status == "rejected" else second
    assert (stored.decided_at, stored.decided_by) == (winner.decided_at, winner.decided_by)
    assert (stored.corrected_answer, stored.note) == (winner.corrected_answer, winner.note)
    assert not await store.reviews.decide_review("acme", "rev_" + "0" * 24, first)


async def test_listing_is_newest_first_filtered_and_paged(store: Store) -> None:
    rows = [
        review(created_at=1000.0 + i, target="bot" if i % 2 else "gpt", status="pending")
        for i in range(5)
    ]
    # Two queued in the same instant: the id orders them, so no page repeats or skips one.
    rows.append(review(created_at=1004.0, target="gpt"))
    rows[2] = dataclasses.replace(rows[2], status="approved", decided_at=1.0, decided_by="k")
    for row in rows:
        await store.reviews.add_review(row)
    await store.reviews.add_review(review(tenant="globex", created_at=5000.0))
    newest_first = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)

    listed = await store.reviews.list_reviews("acme", limit=100)
    assert [r.id for r in listed] == [r.id for r in newest_first]

    pages: list[str] = []
    before: tuple[float, str] | None = None
    while True:
        page = await store.reviews.list_reviews("acme", limit=2, before=before)
        pages += [r.id for r in page]
        if len(page) < 2:
            break
        before = (page[-1].created_at, page[-1].id)
    assert pages == [r.id for r in newest_first]

    pending = await store.reviews.list_reviews("acme", status="pending", limit=100)
    assert [r.id for r in pending] == [r.id for r in newest_first if r.status == "pending"]
    bot = await store.reviews.list_reviews("acme", target="bot", status="pending", limit=100)
    assert {r.id for r in bot} == {rows[1].id, rows[3].id}
    approved = await store.reviews.list_reviews("acme", status="approved")
    assert [r.id for r in approved] == [rows[2].id]
