"""SQLite store (WAL): traces here, knowledge bases in :mod:`sqlite_knowledge`, API keys and
tenants in :mod:`sqlite_keys`, pruning in :mod:`sqlite_retention`, the review queue in
:mod:`sqlite_reviews`, feedback in :mod:`sqlite_feedback`, the cost ledger in
:mod:`sqlite_ledger`, agent runs in :mod:`sqlite_runs`, prompt labels in
:mod:`sqlite_prompts`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from groundgate.store.sqlite_db import SQLiteDB, migrate, transaction
from groundgate.store.sqlite_eval_runs import SQLiteEvalRuns
from groundgate.store.sqlite_feedback import SQLiteFeedback
from groundgate.store.sqlite_keys import SQLiteKeys
from groundgate.store.sqlite_knowledge import SQLiteKnowledge
from groundgate.store.sqlite_ledger import SQLiteLedger
from groundgate.store.sqlite_prompts import SQLitePrompts
from groundgate.store.sqlite_retention import SQLiteRetention
from groundgate.store.sqlite_reviews import SQLiteReviews
from groundgate.store.sqlite_runs import SQLiteRuns
from groundgate.store.traces import TraceRow
from groundgate.store.usage import usage_row
from groundgate.store.variants import VariantTrace, variant_trace

__all__ = ["SQLiteStore", "migrate"]

_INSERT_TRACE = (
    "INSERT OR REPLACE INTO traces (id, tenant, created_at, endpoint, model, source, deployment,"
    " status, http_status, prompt_tokens, completion_tokens, cost_usd, latency_ms, data, key_id)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

# The JSON is a BLOB: read as text, or SQLite 3.45+ would take it for its binary JSONB.
_VARIANT_TRACES = """
WITH split AS (
    SELECT id, created_at, status, latency_ms, cost_usd, CAST(data AS TEXT) AS doc FROM traces
    WHERE tenant = ? AND created_at >= ? AND created_at < ?
)
SELECT id, created_at, json_extract(doc, '$.attrs.variant.name'), status, latency_ms, cost_usd,
       json_extract(doc, '$.attrs.guards.decisions')
FROM split WHERE json_extract(doc, '$.attrs.variant.target') = ?
ORDER BY created_at, id"""


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self.db = SQLiteDB(path)
        self.knowledge = SQLiteKnowledge(self.db)
        self.keys = SQLiteKeys(self.db)
        self.retention = SQLiteRetention(self.db)
        self.reviews = SQLiteReviews(self.db)
        self.feedback = SQLiteFeedback(self.db)
        self.ledger = SQLiteLedger(self.db)
        self.runs = SQLiteRuns(self.db)
        self.prompts = SQLitePrompts(self.db)
        self.eval_runs = SQLiteEvalRuns(self.db)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> bool:
        try:
            row = await self.db.read(lambda db: db.execute("SELECT 1").fetchone())
        except Exception:
            return False
        return bool(row == (1,))

    async def write_traces(self, traces: Sequence[TraceRow]) -> None:
        rows = [
            (
                t.id,
                t.tenant,
                t.created_at,
                t.endpoint,
                t.model,
                t.source,
                t.deployment,
                t.status,
                t.http_status,
                t.prompt_tokens,
                t.completion_tokens,
                t.cost_usd,
                t.latency_ms,
                t.to_json(),
                t.key_id,
            )
            for t in traces
        ]
        await self.db.write(
            lambda db: transaction(db, lambda d: d.executemany(_INSERT_TRACE, rows))
        )

    async def usage(
        self, tenant: str, since: float, until: float, key_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT model, key_id, count(*), sum(prompt_tokens), sum(completion_tokens),"
            " sum(cost_usd), sum(status = 'error') FROM traces WHERE tenant = ?"
            " AND created_at >= ? AND created_at < ?"
        )
        params: list[Any] = [tenant, since, until]
        if key_id is not None:
            sql += " AND key_id = ?"
            params.append(key_id)
        sql += " GROUP BY model, key_id ORDER BY model, key_id"
        rows = await self.db.read(lambda db: db.execute(sql, params).fetchall())
        return [usage_row(r) for r in rows]

    async def variant_traces(
        self, tenant: str, target: str, since: float, until: float
    ) -> list[VariantTrace]:
        params = (tenant, since, until, target)
        rows = await self.db.read(lambda db: db.execute(_VARIANT_TRACES, params).fetchall())
        return [variant_trace(r) for r in rows]

    async def get_trace(self, tenant: str, trace_id: str) -> dict[str, Any] | None:
        row = await self.db.read(
            lambda db: db.execute(
                "SELECT data FROM traces WHERE tenant = ? AND id = ?", (tenant, trace_id)
            ).fetchone()
        )
        if row is None:
            return None
        result: dict[str, Any] = orjson.loads(bytes(row[0]))
        return result
