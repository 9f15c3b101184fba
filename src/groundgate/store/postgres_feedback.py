"""Feedback on PostgreSQL; semantics mirror :mod:`sqlite_feedback` (the conformance suite
holds both to them)."""

from __future__ import annotations

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
from groundgate.store.postgres_knowledge import Connect, pg_text

_UPSERT = upsert_sql("%s", "IS DISTINCT FROM")
_SELECT_ONE = select_one_sql("%s")


class PostgresFeedback:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def put_feedback(self, feedback: FeedbackRecord) -> tuple[FeedbackRecord, PutOutcome]:
        row = feedback_row(feedback, pg_text)
        async with self._connect() as conn, conn.transaction():
            cur = await conn.execute(_UPSERT, row)
            returned = await cur.fetchone()
            existing = None
            if returned is None:
                cur = await conn.execute(_SELECT_ONE, row[:3])
                found = await cur.fetchone()
                existing = None if found is None else feedback_from_row(found)
        return written(feedback, returned, existing)

    async def trace_feedback(self, tenant: str, trace_id: str) -> list[FeedbackRecord]:
        query = (
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE tenant = %s AND trace_id = %s"
            " ORDER BY created_at, source"
        )
        async with self._connect() as conn:
            cur = await conn.execute(query, (pg_text(tenant), pg_text(trace_id)))
            rows = await cur.fetchall()
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
        cursor = (
            None
            if after is None
            else FeedbackCursor(after.created_at, pg_text(after.trace_id), pg_text(after.source))
        )
        where, params = list_sql(
            "%s",
            target=None if target is None else pg_text(target),
            since=since,
            after=cursor,
        )
        query = (
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE {where}"
            " ORDER BY created_at, trace_id, source LIMIT %s"
        )
        async with self._connect() as conn:
            cur = await conn.execute(query, [pg_text(tenant), *params, limit])
            rows = await cur.fetchall()
        return [feedback_from_row(row) for row in rows]
