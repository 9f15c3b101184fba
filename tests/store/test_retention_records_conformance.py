"""Retention of feedback, agent runs, reviews and eval runs, the same for every Store backend:
finished runs age from when they ended and unfinished ones are never pruned; decided reviews
age from their decision and pending ones are never pruned."""

from __future__ import annotations

import time

from groundgate.config_retention import RetentionLimit
from groundgate.store.base import Store
from groundgate.store.pruner import Pruner
from groundgate.store.reviews import Decision
from tests.store.test_eval_runs_conformance import record as eval_run
from tests.store.test_feedback_conformance import feedback
from tests.store.test_retention_conformance import DAY, config, only
from tests.store.test_reviews_conformance import review
from tests.store.test_runs_conformance import run


def by_age(days: float) -> RetentionLimit:
    return RetentionLimit(max_age_days=days, max_rows=0)


def capped(rows: int) -> RetentionLimit:
    return RetentionLimit(max_age_days=0, max_rows=rows)


async def test_feedback_goes_by_age_and_the_cap_keeps_the_newest(store: Store) -> None:
    now = time.time()
    given = {  # (tenant, trace, source): days ago
        ("acme", "a" * 32, "end-user:1"): 50,
        ("globex", "b" * 32, "end-user:1"): 46,
        ("acme", "c" * 32, "end-user:1"): 3,
        ("acme", "c" * 32, "review"): 3,  # the same trace and time: the source breaks the tie
        ("acme", "d" * 32, "end-user:1"): 1,
    }
    for (tenant, trace, source), days in given.items():
        at = now - days * DAY
        await store.feedback.put_feedback(
            feedback(tenant=tenant, trace_id=trace, source=source, created_at=at, updated_at=at)
        )

    async def kept() -> set[tuple[str, str, str]]:
        rows = [
            *await store.feedback.list_feedback("acme"),
            *await store.feedback.list_feedback("globex"),
        ]
        return {(r.tenant, r.trace_id, r.source) for r in rows}

    pruner = Pruner(store.retention, config(feedback=by_age(45)), clock=lambda: now)
    assert await pruner.run_once() == only(feedback=2)
    assert await kept() == set(list(given)[2:])

    pruner = Pruner(store.retention, config(feedback=capped(2)), clock=lambda: now)
    assert await pruner.run_once() == only(feedback=1)
    assert await kept() == {("acme", "c" * 32, "review"), ("acme", "d" * 32, "end-user:1")}


async def test_finished_agent_runs_age_from_their_end_and_unfinished_ones_stay(
    store: Store,
) -> None:
    now = time.time()
    created = now - 60 * DAY
    runs = {
        "done-long-ago": run(created_at=created, updated_at=now - 40 * DAY, status="completed"),
        "expired-long-ago": run(
            "globex", created_at=created, updated_at=now - 31 * DAY, status="expired"
        ),
        "done-lately": run(created_at=created, updated_at=now - DAY, status="stopped"),
        "failed-now": run(created_at=now, updated_at=now, status="failed"),
        # Still going, or waiting for a person: never pruned, however old.
        "running-long-ago": run(created_at=created, updated_at=now - 40 * DAY, status="running"),
        "waiting-long-ago": run(created_at=created, updated_at=now - 40 * DAY),
    }
    for record in runs.values():
        await store.runs.add_run(record)

    async def kept() -> set[str]:
        return {
            name for name, r in runs.items() if await store.runs.get_run(r.tenant, r.id) is not None
        }

    pruner = Pruner(store.retention, config(agent_runs=by_age(30)), clock=lambda: now)
    assert await pruner.run_once() == only(agent_runs=2)
    unfinished = {"running-long-ago", "waiting-long-ago"}
    assert await kept() == {"done-lately", "failed-now"} | unfinished

    # The cap counts finished runs only: the two unfinished ones neither count nor go.
    pruner = Pruner(store.retention, config(agent_runs=capped(1)), clock=lambda: now)
    assert await pruner.run_once() == only(agent_runs=1)
    assert await kept() == {"failed-now"} | unfinished


async def test_decided_reviews_age_from_the_decision_and_pending_ones_stay(
    store: Store,
) -> None:
    now = time.time()
    created = now - 200 * DAY
    reviews = {
        "pending": review(created_at=created),
        "decided-long-ago": review(created_at=created),
        "decided-lately": review(created_at=created),
        "decided-now": review("globex", created_at=now),
    }
    decided = {"decided-long-ago": 100, "decided-lately": 1, "decided-now": 0}
    for name, record in reviews.items():
        await store.reviews.add_review(record)
        if name in decided:
            decision = Decision("approved", now - decided[name] * DAY, "cli")
            assert await store.reviews.decide_review(record.tenant, record.id, decision)

    async def kept() -> set[str]:
        return {
            name
            for name, r in reviews.items()
            if await store.reviews.get_review(r.tenant, r.id) is not None
        }

    pruner = Pruner(store.retention, config(reviews=by_age(90)), clock=lambda: now)
    assert await pruner.run_once() == only(reviews=1)
    assert await kept() == {"pending", "decided-lately", "decided-now"}

    pruner = Pruner(store.retention, config(reviews=capped(1)), clock=lambda: now)
    assert await pruner.run_once() == only(reviews=1)
    assert await kept() == {"pending", "decided-now"}


async def test_eval_runs_go_by_age_and_cap(store: Store) -> None:
    now = time.time()
    runs = {
        "last-year": eval_run(now - 400 * DAY, 0.5),
        "spring": eval_run(now - 200 * DAY, 0.6, tenant="other"),
        "last-week": eval_run(now - 7 * DAY, 0.7),
        "today": eval_run(now, 0.8),
    }
    for record in runs.values():
        await store.eval_runs.add_eval_run(record)

    async def kept() -> set[str]:
        return {
            name
            for name, r in runs.items()
            if await store.eval_runs.get_eval_run(r.tenant, r.id) is not None
        }

    pruner = Pruner(store.retention, config(eval_runs=by_age(365)), clock=lambda: now)
    assert await pruner.run_once() == only(eval_runs=1)
    assert await kept() == {"spring", "last-week", "today"}
    pruner = Pruner(store.retention, config(eval_runs=capped(2)), clock=lambda: now)
    assert await pruner.run_once() == only(eval_runs=1)
    assert await kept() == {"last-week", "today"}
