"""The cost ledger on SQLite (semantics in :mod:`ledger`). The trace JSON is a BLOB: it is read
as text, or SQLite 3.45+ would take it for its binary JSONB."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from groundgate.store.ledger import LedgerRow, ledger_row, nearest_rank, sort_rows
from groundgate.store.sqlite_db import SQLiteDB

_LEDGER = """
WITH picked AS (
    SELECT created_at, tenant, key_id, model, deployment, status, prompt_tokens,
           completion_tokens, cost_usd, CAST(data AS TEXT) AS doc
    FROM traces WHERE {where}
), keyed AS (
    SELECT date(created_at, 'unixepoch') AS day, tenant, key_id,
           json_extract(doc, '$.attrs.app') AS app, model, deployment,
           json_extract(doc, '$.attrs.route.tier') AS tier, status,
           coalesce(json_extract(doc, '$.attrs.cache.status') IN ('exact', 'semantic'), 0)
               AS cache_hit,
           prompt_tokens, completion_tokens, cost_usd,
           coalesce(json_extract(doc, '$.attrs.cache.saved_usd'), 0) AS cache_saved,
           coalesce(json_extract(doc, '$.attrs.route.saved_usd'), 0) AS route_saved
    FROM picked
)
SELECT day, tenant, key_id, app, model, deployment, tier, status, cache_hit, count(*),
       sum(prompt_tokens), sum(completion_tokens), sum(cost_usd), sum(cache_saved),
       sum(route_saved)
FROM keyed
GROUP BY day, tenant, key_id, app, model, deployment, tier, status, cache_hit"""


def _window(
    tenant: str | None, since: float, until: float, key_id: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause of [since, until) for one tenant (or all) and maybe one key."""
    clauses = ["created_at >= ?", "created_at < ?"]
    params: list[Any] = [since, until]
    if tenant is not None:
        clauses.insert(0, "tenant = ?")
        params.insert(0, tenant)
    if key_id is not None:
        clauses.append("key_id = ?")
        params.append(key_id)
    return " AND ".join(clauses), params


class SQLiteLedger:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def rows(
        self, tenant: str | None, since: float, until: float, key_id: str | None = None
    ) -> list[LedgerRow]:
        where, params = _window(tenant, since, until, key_id)
        sql = _LEDGER.format(where=where)
        found = await self.db.read(lambda db: db.execute(sql, params).fetchall())
        return sort_rows([ledger_row(r) for r in found])

    async def cost_percentiles(
        self, tenant: str | None, since: float, until: float, percentiles: Sequence[float]
    ) -> dict[float, float]:
        where, params = _window(tenant, since, until, None)
        count_sql = f"SELECT count(*) FROM traces WHERE {where}"
        rank_sql = f"SELECT cost_usd FROM traces WHERE {where} ORDER BY cost_usd LIMIT 1 OFFSET ?"

        def read(db: sqlite3.Connection) -> dict[float, float]:
            count = int(db.execute(count_sql, params).fetchone()[0])
            if count == 0:
                return {}
            return {
                p: float(db.execute(rank_sql, [*params, nearest_rank(count, p) - 1]).fetchone()[0])
                for p in percentiles
            }

        result: dict[float, float] = await self.db.read(read)
        return result
