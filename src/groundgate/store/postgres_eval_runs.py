"""Evaluation runs on PostgreSQL; semantics mirror :mod:`sqlite_eval_runs` (the conformance
suite holds both to them). The summary and the report are jsonb."""

from __future__ import annotations

from typing import Any

from groundgate.store.eval_runs import (
    EVAL_RUN_COLUMNS,
    EvalRunRecord,
    eval_run_from_row,
    eval_run_row,
)
from groundgate.store.listing import listing_where
from groundgate.store.postgres_knowledge import Connect, pg_json, pg_text

_INSERT = f"""
INSERT INTO eval_runs ({EVAL_RUN_COLUMNS}, report)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"""


def _same(value: Any) -> Any:
    return value  # jsonb arrives decoded


def _row(run: EvalRunRecord) -> tuple[Any, ...]:
    row = list(eval_run_row(run, pg_json))
    # Text columns cannot hold NUL; pg_text makes any text storable.
    for i in (0, 1, 3, 4, 5, 6):
        if row[i] is not None:
            row[i] = pg_text(row[i])
    return tuple(row)


class PostgresEvalRuns:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def add_eval_run(self, run: EvalRunRecord) -> None:
        async with self._connect() as conn:
            await conn.execute(_INSERT, _row(run))

    async def get_eval_run(self, tenant: str, run_id: str) -> EvalRunRecord | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {EVAL_RUN_COLUMNS}, report FROM eval_runs WHERE tenant = %s AND id = %s",
                (pg_text(tenant), pg_text(run_id)),
            )
            row = await cur.fetchone()
        return None if row is None else eval_run_from_row(row, _same, row[8])

    async def list_eval_runs(
        self,
        tenant: str,
        *,
        app: str | None = None,
        dataset: str | None = None,
        limit: int = 20,
        with_report: bool = False,
    ) -> list[EvalRunRecord]:
        where, params = listing_where(
            "%s",
            {
                "app": None if app is None else pg_text(app),
                "dataset": None if dataset is None else pg_text(dataset),
            },
        )
        report = "report" if with_report else "NULL"
        query = (
            f"SELECT {EVAL_RUN_COLUMNS}, {report} FROM eval_runs WHERE {where}"
            " ORDER BY created_at DESC, id DESC LIMIT %s"
        )
        async with self._connect() as conn:
            cur = await conn.execute(query, [pg_text(tenant), *params, limit])
            rows = await cur.fetchall()
        return [eval_run_from_row(row, _same, row[8]) for row in rows]
