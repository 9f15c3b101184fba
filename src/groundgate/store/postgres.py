"""PostgreSQL store (scale-out): traces here, knowledge bases in :mod:`postgres_knowledge`, API
keys and tenants in :mod:`postgres_keys`, pruning in :mod:`postgres_retention`, the review
queue in :mod:`postgres_reviews`, feedback in :mod:`postgres_feedback`, the cost
ledger in :mod:`postgres_ledger`, agent runs in :mod:`postgres_runs`, prompt labels in
:mod:`postgres_prompts`.

One psycopg async connection pool per process (``pool_size`` connections at most, one kept
open and more opened on demand). Connections run in autocommit mode, so a read is one round
trip; writes that must be atomic open an explicit transaction. Each new connection gets the
pgvector adapters, orjson for jsonb, and ``hnsw.iterative_scan`` (see postgres_knowledge), and
is checked before it is handed out, so a database restart costs no failed request.

Opening runs the migrations once (under an advisory lock: replicas may start together).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from groundgate.store.postgres_eval_runs import PostgresEvalRuns
from groundgate.store.postgres_feedback import PostgresFeedback
from groundgate.store.postgres_keys import PostgresKeys
from groundgate.store.postgres_knowledge import PostgresKnowledge, pg_json_text, pg_text
from groundgate.store.postgres_ledger import PostgresLedger
from groundgate.store.postgres_migrations import migrate
from groundgate.store.postgres_prompts import PostgresPrompts
from groundgate.store.postgres_retention import PostgresRetention
from groundgate.store.postgres_reviews import PostgresReviews
from groundgate.store.postgres_runs import PostgresRuns
from groundgate.store.traces import TraceRow
from groundgate.store.usage import usage_row
from groundgate.store.variants import VariantTrace, variant_trace

__all__ = ["PostgresStore", "migrate"]

_UPSERT_TRACE = """
INSERT INTO traces (tenant, id, created_at, endpoint, model, source, deployment, status,
                    http_status, prompt_tokens, completion_tokens, cost_usd, latency_ms, data,
                    key_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
ON CONFLICT (tenant, id) DO UPDATE SET created_at = excluded.created_at,
    endpoint = excluded.endpoint, model = excluded.model, source = excluded.source,
    deployment = excluded.deployment, status = excluded.status,
    http_status = excluded.http_status, prompt_tokens = excluded.prompt_tokens,
    completion_tokens = excluded.completion_tokens, cost_usd = excluded.cost_usd,
    latency_ms = excluded.latency_ms, data = excluded.data, key_id = excluded.key_id"""

_VARIANT_TRACES = """
SELECT id, created_at, data->'attrs'->'variant'->>'name', status, latency_ms, cost_usd,
       data->'attrs'->'guards'->'decisions'
FROM traces
WHERE tenant = %s AND created_at >= %s AND created_at < %s
  AND data->'attrs'->'variant'->>'target' = %s
ORDER BY created_at, id"""


class PostgresStore:
    def __init__(self, dsn: str, *, pool_size: int = 10, connect_timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self.pool_size = max(1, pool_size)
        self.connect_timeout_s = connect_timeout_s
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self.knowledge = PostgresKnowledge(self._connection)
        self.keys = PostgresKeys(self._connection)
        self.retention = PostgresRetention(self._connection)
        self.reviews = PostgresReviews(self._connection)
        self.feedback = PostgresFeedback(self._connection)
        self.ledger = PostgresLedger(self._connection)
        self.runs = PostgresRuns(self._connection)
        self.prompts = PostgresPrompts(self._connection)
        self.eval_runs = PostgresEvalRuns(self._connection)

    async def open(self) -> None:
        if self._pool is not None:
            return
        # Migrate on a connection of its own: the pool's connections need the vector type.
        async with await AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
        ) as conn:
            await migrate(conn)
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            check=AsyncConnectionPool.check_connection,
            timeout=self.connect_timeout_s,
            name="groundgate",
            open=False,
        )
        await pool.open(wait=True, timeout=self.connect_timeout_s)
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        async with self._pool.connection() as conn:
            yield conn

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                cur = await conn.execute("SELECT 1")
                row = await cur.fetchone()
        except Exception:
            return False
        return row == (1,)

    async def write_traces(self, traces: Sequence[TraceRow]) -> None:
        if not traces:
            return
        rows = [
            (
                pg_text(t.tenant),
                pg_text(t.id),
                t.created_at,
                pg_text(t.endpoint),
                pg_text(t.model),
                None if t.source is None else pg_text(t.source),
                None if t.deployment is None else pg_text(t.deployment),
                pg_text(t.status),
                t.http_status,
                t.prompt_tokens,
                t.completion_tokens,
                t.cost_usd,
                t.latency_ms,
                pg_json_text(t.to_json()),
                None if t.key_id is None else pg_text(t.key_id),
            )
            for t in traces
        ]
        async with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_UPSERT_TRACE, rows)

    async def usage(
        self, tenant: str, since: float, until: float, key_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT model, key_id, count(*), sum(prompt_tokens), sum(completion_tokens),"
            " sum(cost_usd), count(*) FILTER (WHERE status = 'error') FROM traces"
            " WHERE tenant = %s AND created_at >= %s AND created_at < %s"
        )
        params: list[Any] = [pg_text(tenant), since, until]
        if key_id is not None:
            sql += " AND key_id = %s"
            params.append(pg_text(key_id))
        sql += " GROUP BY model, key_id ORDER BY model, key_id"
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        return [usage_row(r) for r in rows]

    async def variant_traces(
        self, tenant: str, target: str, since: float, until: float
    ) -> list[VariantTrace]:
        params = (pg_text(tenant), since, until, pg_text(target))
        async with self._connection() as conn:
            cur = await conn.execute(_VARIANT_TRACES, params)
            rows = await cur.fetchall()
        return [variant_trace(r) for r in rows]

    async def get_trace(self, tenant: str, trace_id: str) -> dict[str, Any] | None:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT data FROM traces WHERE tenant = %s AND id = %s",
                (pg_text(tenant), pg_text(trace_id)),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        data: dict[str, Any] = row[0]
        return data


async def _configure(conn: AsyncConnection[Any]) -> None:
    await register_vector_async(conn)
    set_json_loads(orjson.loads, conn)
    # Keep scanning the HNSW graph until LIMIT rows pass the tenant/kb/metadata filters, in
    # exact distance order. The setting is a placeholder until pgvector loads, which keeps it.
    await conn.execute("SET hnsw.iterative_scan = strict_order")
