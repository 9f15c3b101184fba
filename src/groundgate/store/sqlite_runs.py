"""Agent runs on SQLite (semantics in :mod:`runs`). The record's body is a JSON text column."""

from __future__ import annotations

from typing import Any

import orjson

from groundgate.store.listing import listing_where
from groundgate.store.runs import (
    RUN_COLUMN_COUNT,
    RUN_COLUMNS,
    RunCursor,
    RunRecord,
    RunStatus,
    idle_runs_query,
    run_from_row,
    run_row,
)
from groundgate.store.sqlite_db import SQLiteDB

_INSERT = f"INSERT INTO agent_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * RUN_COLUMN_COUNT)})"
_SAVE = (
    "UPDATE agent_runs SET app = ?, key_id = ?, trace_id = ?, created_at = ?, updated_at = ?,"
    " status = ?, data = ? WHERE tenant = ? AND id = ? AND status = ?"
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class SQLiteRuns:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def add_run(self, run: RunRecord) -> None:
        row = run_row(run, _json)
        await self.db.write(lambda db: db.execute(_INSERT, row))

    async def get_run(self, tenant: str, run_id: str) -> RunRecord | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {RUN_COLUMNS} FROM agent_runs WHERE tenant = ? AND id = ?",
                (tenant, run_id),
            ).fetchall()
        )
        return run_from_row(rows[0], orjson.loads) if rows else None

    async def list_runs(
        self,
        tenant: str,
        *,
        status: RunStatus | None = None,
        app: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        where, params = listing_where("?", {"status": status, "app": app}, before)
        query = (
            f"SELECT {RUN_COLUMNS} FROM agent_runs WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        values: list[Any] = [tenant, *params, limit]
        rows = await self.db.read(lambda db: db.execute(query, values).fetchall())
        return [run_from_row(row, orjson.loads) for row in rows]

    async def save_run(self, run: RunRecord, *, expected: RunStatus) -> bool:
        row = run_row(run, _json)
        params = (*row[2:], run.tenant, run.id, expected)
        changed = await self.db.write(lambda db: db.execute(_SAVE, params).rowcount)
        return bool(changed > 0)

    async def idle_runs(
        self,
        status: RunStatus,
        *,
        updated_before: float,
        after: RunCursor | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        query, params = idle_runs_query(
            "?", status=status, updated_before=updated_before, after=after, limit=limit
        )
        rows = await self.db.read(lambda db: db.execute(query, params).fetchall())
        return [run_from_row(row, orjson.loads) for row in rows]
