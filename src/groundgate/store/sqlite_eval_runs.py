"""Evaluation runs on SQLite (semantics in :mod:`eval_runs`); the summary and the report are
JSON text columns (the report is read only when asked for)."""

from __future__ import annotations

from typing import Any

import orjson

from groundgate.store.eval_runs import (
    EVAL_RUN_COLUMN_COUNT,
    EVAL_RUN_COLUMNS,
    EvalRunRecord,
    eval_run_from_row,
    eval_run_row,
)
from groundgate.store.listing import listing_where
from groundgate.store.sqlite_db import SQLiteDB

_PLACES = ", ".join("?" * (EVAL_RUN_COLUMN_COUNT + 1))
_INSERT = f"INSERT INTO eval_runs ({EVAL_RUN_COLUMNS}, report) VALUES ({_PLACES})"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class SQLiteEvalRuns:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def add_eval_run(self, run: EvalRunRecord) -> None:
        row = eval_run_row(run, _json)
        await self.db.write(lambda db: db.execute(_INSERT, row))

    async def get_eval_run(self, tenant: str, run_id: str) -> EvalRunRecord | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {EVAL_RUN_COLUMNS}, report FROM eval_runs WHERE tenant = ? AND id = ?",
                (tenant, run_id),
            ).fetchall()
        )
        return eval_run_from_row(rows[0], orjson.loads, rows[0][8]) if rows else None

    async def list_eval_runs(
        self,
        tenant: str,
        *,
        app: str | None = None,
        dataset: str | None = None,
        limit: int = 20,
        with_report: bool = False,
    ) -> list[EvalRunRecord]:
        where, params = listing_where("?", {"app": app, "dataset": dataset})
        report = "report" if with_report else "NULL"
        query = (
            f"SELECT {EVAL_RUN_COLUMNS}, {report} FROM eval_runs WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        values: list[Any] = [tenant, *params, limit]
        rows = await self.db.read(lambda db: db.execute(query, values).fetchall())
        return [eval_run_from_row(row, orjson.loads, row[8]) for row in rows]
