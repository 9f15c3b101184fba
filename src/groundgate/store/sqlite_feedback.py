"""Feedback on SQLite (semantics in :mod:`feedback`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from groundgate.store.feedback import (
    FEEDBACK_COLUMNS,
    FeedbackCursor,
    FeedbackRecord,
    PutOutcome,
    feedback_from_row,
    feedback_row,
    list_sql,
    select_one_sql,
    upsert_sql,
    written,
)
from groundgate.store.sqlite_db import SQLiteDB, transaction

_UPSERT = upsert_sql("?", "IS NOT")
_SELECT_ONE = select_one_sql("?")


class SQLiteFeedback:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def put_feedback(self, feedback: FeedbackRecord) -> tuple[FeedbackRecord, PutOutcome]:
        row = feedback_row(feedback)

        def put(db: sqlite3.Connection) -> tuple[Any, Any]:
            returned = db.execute(_UPSERT, row).fetchone()
            existing = None
            if returned is None:
                existing = db.execute(_SELECT_ONE, row[:3]).fetchone()
            return returned, existing

        returned, existing = await self.db.write(lambda db: transaction(db, put))
        return written(
            feedback, returned, None if existing is None else feedback_from_row(existing)
        )

    async def trace_feedback(self, tenant: str, trace_id: str) -> list[FeedbackRecord]:
        query = (
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE tenant = ? AND trace_id = ?"
            " ORDER BY created_at, source"
        )
        rows = await self.db.read(lambda db: db.execute(query, (tenant, trace_id)).fetchall())
        return [feedback_from_row(row) for row in rows]

    async def list_feedback(
        self,
        tenant: str,
        *,
        target: str | None = None,
        since: float | None = None,
        after: FeedbackCursor | None = None,
        limit: int = 500,
    ) -> list[FeedbackRecord]:
        where, params = list_sql("?", target=target, since=since, after=after)
        query = (
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE {where}"
            " ORDER BY created_at, trace_id, source LIMIT ?"
        )
        values = [tenant, *params, limit]
        rows = await self.db.read(lambda db: db.execute(query, values).fetchall())
        return [feedback_from_row(row) for row in rows]
