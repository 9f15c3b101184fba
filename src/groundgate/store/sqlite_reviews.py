"""The review queue on SQLite (semantics in :mod:`reviews`). JSON columns are text."""

from __future__ import annotations

from typing import Any

import orjson

from groundgate.store.listing import listing_where
from groundgate.store.reviews import (
    REVIEW_COLUMN_COUNT,
    REVIEW_COLUMNS,
    Decision,
    ReviewRecord,
    ReviewStatus,
    review_from_row,
    review_row,
)
from groundgate.store.sqlite_db import SQLiteDB

_INSERT = f"INSERT INTO reviews ({REVIEW_COLUMNS}) VALUES ({', '.join('?' * REVIEW_COLUMN_COUNT)})"
_DECIDE = (
    "UPDATE reviews SET status = ?, decided_at = ?, decided_by = ?, corrected_answer = ?,"
    " note = ? WHERE tenant = ? AND id = ? AND status = 'pending'"
)


class SQLiteReviews:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def add_review(self, review: ReviewRecord) -> None:
        row = review_row(review, _json)
        await self.db.write(lambda db: db.execute(_INSERT, row))

    async def get_review(self, tenant: str, review_id: str) -> ReviewRecord | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE tenant = ? AND id = ?",
                (tenant, review_id),
            ).fetchall()
        )
        return review_from_row(rows[0], orjson.loads) if rows else None

    async def list_reviews(
        self,
        tenant: str,
        *,
        status: ReviewStatus | None = None,
        target: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[ReviewRecord]:
        where, params = listing_where("?", {"status": status, "target": target}, before)
        query = (
            f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        values: list[Any] = [tenant, *params, limit]
        rows = await self.db.read(lambda db: db.execute(query, values).fetchall())
        return [review_from_row(row, orjson.loads) for row in rows]

    async def decide_review(self, tenant: str, review_id: str, decision: Decision) -> bool:
        params = (
            decision.status,
            decision.decided_at,
            decision.decided_by,
            decision.corrected_answer,
            decision.note,
            tenant,
            review_id,
        )
        changed = await self.db.write(lambda db: db.execute(_DECIDE, params).rowcount)
        return bool(changed > 0)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
