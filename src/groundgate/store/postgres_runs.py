"""Agent runs on PostgreSQL; semantics mirror :mod:`sqlite_runs` (the conformance suite holds
both to them). The record's body is jsonb."""

from __future__ import annotations

from typing import Any

from groundgate.store.listing import listing_where
from groundgate.store.postgres_knowledge import Connect, pg_json, pg_text
from groundgate.store.runs import (
    RUN_COLUMNS,
    RunCursor,
    RunRecord,
    RunStatus,
    idle_runs_query,
    run_from_row,
    run_row,
)

_INSERT = f"""
INSERT INTO agent_runs ({RUN_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"""
_SAVE = """
UPDATE agent_runs SET app = %s, key_id = %s, trace_id = %s, created_at = %s, updated_at = %s,
    status = %s, data = %s::jsonb
WHERE tenant = %s AND id = %s AND status = %s"""


def _same(value: Any) -> Any:
    return value  # jsonb arrives decoded


def _row(run: RunRecord) -> tuple[Any, ...]:
    row = list(run_row(run, pg_json))
    # Text columns cannot hold NUL; pg_text makes any text storable.
    for i in (0, 1, 2, 4):
        row[i] = pg_text(row[i])
    if row[3] is not None:
        row[3] = pg_text(row[3])
    return tuple(row)


class PostgresRuns:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def add_run(self, run: RunRecord) -> None:
        async with self._connect() as conn:
            await conn.execute(_INSERT, _row(run))

    async def get_run(self, tenant: str, run_id: str) -> RunRecord | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {RUN_COLUMNS} FROM agent_runs WHERE tenant = %s AND id = %s",
                (pg_text(tenant), pg_text(run_id)),
            )
            row = await cur.fetchone()
        return None if row is None else run_from_row(row, _same)

    async def list_runs(
        self,
        tenant: str,
        *,
        status: RunStatus | None = None,
        app: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        where, params = listing_where(
            "%s",
            {"status": status, "app": None if app is None else pg_text(app)},
            None if before is None else (before[0], pg_text(before[1])),
        )
        query = (
            f"SELECT {RUN_COLUMNS} FROM agent_runs WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT %s"
        )
        async with self._connect() as conn:
            cur = await conn.execute(query, [pg_text(tenant), *params, limit])
            rows = await cur.fetchall()
        return [run_from_row(row, _same) for row in rows]

    async def save_run(self, run: RunRecord, *, expected: RunStatus) -> bool:
        row = _row(run)
        params = (*row[2:], row[0], row[1], expected)
        async with self._connect() as conn:
            cur = await conn.execute(_SAVE, params)
            return cur.rowcount > 0

    async def idle_runs(
        self,
        status: RunStatus,
        *,
        updated_before: float,
        after: RunCursor | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        if after is not None:
            after = RunCursor(after.updated_at, pg_text(after.tenant), pg_text(after.id))
        query, params = idle_runs_query(
            "%s", status=status, updated_before=updated_before, after=after, limit=limit
        )
        async with self._connect() as conn:
            cur = await conn.execute(query, params)
            rows = await cur.fetchall()
        return [run_from_row(row, _same) for row in rows]
