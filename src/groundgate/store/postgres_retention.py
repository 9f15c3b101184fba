"""Retention on PostgreSQL: the shared queries of :mod:`retention`.

Each deletion batch is one autocommit statement, so row locks are held only while it runs and
replicas pruning at once never wait on each other for long. Dead rows are left to autovacuum,
which makes their space reusable; nothing here needs to reclaim it.
"""

from __future__ import annotations

from groundgate.store.postgres_knowledge import Connect
from groundgate.store.retention import (
    Position,
    RetainedKind,
    delete_query,
    newest_query,
    position,
)


class PostgresRetention:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def newest(
        self, kind: RetainedKind, *, before: float | None = None, skip: int = 0
    ) -> Position | None:
        query = newest_query(kind, "%s", before=before, skip=skip)
        async with self._connect() as conn:
            cur = await conn.execute(query.sql, query.params)
            row = await cur.fetchone()
        return position(row)

    async def delete_upto(self, kind: RetainedKind, upto: Position, limit: int) -> int:
        query = delete_query(kind, "%s", upto, limit)
        async with self._connect() as conn:
            cur = await conn.execute(query.sql, query.params)
            return cur.rowcount

    async def reclaim(self) -> None:
        """Nothing to do: autovacuum makes the space of deleted rows reusable."""
