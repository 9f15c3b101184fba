"""The review queue on PostgreSQL; semantics mirror :mod:`sqlite_reviews` (the conformance
suite holds both to them). JSON columns are jsonb."""

from __future__ import annotations

from typing import Any

from groundgate.store.listing import listing_where
from groundgate.store.postgres_knowledge import Connect, pg_json, pg_text
from groundgate.store.reviews import (
    REVIEW_COLUMNS,
    Decision,
    ReviewRecord,
    ReviewStatus,
    review_from_row,
    review_row,
)

_INSERT = f"""
INSERT INTO reviews ({REVIEW_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb,
        %s, %s, %s, %s)"""
_DECIDE = """
UPDATE reviews SET status = %s, decided_at = %s, decided_by = %s, corrected_answer = %s,
    note = %s
WHERE tenant = %s AND id = %s AND status = 'pending'"""


def _same(value: Any) -> Any:
    return value  # jsonb arrives decoded


class PostgresReviews:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def add_review(self, review: ReviewRecord) -> None:
        async with self._connect() as conn:
            await conn.execute(_INSERT, review_row(review, pg_json, pg_text))

    async def get_review(self, tenant: str, review_id: str) -> ReviewRecord | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE tenant = %s AND id = %s",
                (pg_text(tenant), pg_text(review_id)),
            )
            row = await cur.fetchone()
        return None if row is None else review_from_row(row, _same)

    async def list_reviews(
        self,
        tenant: str,
        *,
        status: ReviewStatus | None = None,
        target: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[ReviewRecord]:
        where, params = listing_where(
            "%s",
            {"status": status, "target": None if target is None else pg_text(target)},
            None if before is None else (before[0], pg_text(before[1])),
        )
        query = (
            f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT %s"
        )
        async with self._connect() as conn:
            cur = await conn.execute(query, [pg_text(tenant), *params, limit])
            rows = await cur.fetchall()
        return [review_from_row(row, _same) for row in rows]

    async def decide_review(self, tenant: str, review_id: str, decision: Decision) -> bool:
        params = (
            decision.status,
            decision.decided_at,
            decision.decided_by,
            None if decision.corrected_answer is None else pg_text(decision.corrected_answer),
            None if decision.note is None else pg_text(decision.note),
            pg_text(tenant),
            pg_text(review_id),
        )
        async with self._connect() as conn:
            cur = await conn.execute(_DECIDE, params)
            return cur.rowcount > 0
