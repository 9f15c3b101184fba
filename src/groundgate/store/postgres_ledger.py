"""The cost ledger on PostgreSQL; semantics mirror :mod:`sqlite_ledger` (the conformance suite
holds both to them). Days are UTC whatever the server's time zone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from groundgate.store.ledger import LedgerRow, ledger_row, nearest_rank, sort_rows
from groundgate.store.postgres_knowledge import Connect, pg_text

_LEDGER = """
SELECT to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, tenant, key_id,
       data->'attrs'->>'app' AS app, model, deployment,
       data->'attrs'->'route'->>'tier' AS tier, status,
       coalesce(data->'attrs'->'cache'->>'status' IN ('exact', 'semantic'), false) AS cache_hit,
       count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd),
       sum(coalesce((data->'attrs'->'cache'->>'saved_usd')::double precision, 0)),
       sum(coalesce((data->'attrs'->'route'->>'saved_usd')::double precision, 0))
FROM traces WHERE {where}
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""


def _window(
    tenant: str | None, since: float, until: float, key_id: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause of [since, until) for one tenant (or all) and maybe one key."""
    clauses = ["created_at >= %s", "created_at < %s"]
    params: list[Any] = [since, until]
    if tenant is not None:
        clauses.insert(0, "tenant = %s")
        params.insert(0, pg_text(tenant))
    if key_id is not None:
        clauses.append("key_id = %s")
        params.append(pg_text(key_id))
    return " AND ".join(clauses), params


class PostgresLedger:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def rows(
        self, tenant: str | None, since: float, until: float, key_id: str | None = None
    ) -> list[LedgerRow]:
        where, params = _window(tenant, since, until, key_id)
        async with self._connect() as conn:
            cur = await conn.execute(_LEDGER.format(where=where).encode(), params)
            found = await cur.fetchall()
        return sort_rows([ledger_row(r) for r in found])

    async def cost_percentiles(
        self, tenant: str | None, since: float, until: float, percentiles: Sequence[float]
    ) -> dict[float, float]:
        where, params = _window(tenant, since, until, None)
        async with self._connect() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM traces WHERE {where}".encode(), params)
            row = await cur.fetchone()
            count = int(row[0]) if row is not None else 0
            if count == 0:
                return {}
            found: dict[float, float] = {}
            rank_sql = (
                f"SELECT cost_usd FROM traces WHERE {where} ORDER BY cost_usd LIMIT 1 OFFSET %s"
            ).encode()
            for p in percentiles:
                cur = await conn.execute(rank_sql, [*params, nearest_rank(count, p) - 1])
                value = await cur.fetchone()
                found[p] = float(value[0]) if value is not None else 0.0
        return found
