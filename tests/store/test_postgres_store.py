"""What only the PostgreSQL store has: migrations under a lock, its indexes, its configuration.

The behaviour it shares with SQLite is held by the conformance suites (``store`` fixture).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import AsyncConnection, sql

from groundgate.config import StoreConfig
from groundgate.errors import ConfigError
from groundgate.store.factory import open_store
from groundgate.store.knowledge import ChunkRecord, DocumentRecord
from groundgate.store.postgres import PostgresStore
from groundgate.store.postgres_knowledge import (
    _RANK_WEIGHTS,
    PostgresKnowledge,
    dense_sql,
    keyword_sql,
)
from groundgate.store.postgres_migrations import PG_MIGRATIONS, migrate
from tests.store.backends import postgres_schema, postgres_store
from tests.store.pg_server import PgServer

LATEST = max(v for v, _ in PG_MIGRATIONS)


def vec(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def chunk_list(doc_id: str, n: int, dim: int, seed: int = 0, text: str = "x") -> list[ChunkRecord]:
    return [
        ChunkRecord(f"{doc_id}#{i}", i, f"{text} {i}", embedding=vec(seed + i, dim))
        for i in range(n)
    ]


async def fetch(conn: AsyncConnection[Any], query: Any, params: Any = None) -> list[Any]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


def test_factory_reads_the_dsn_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GG_TEST_PG_DSN", raising=False)
    config = StoreConfig(type="postgres", dsn_env="GG_TEST_PG_DSN", pool_size=3)
    with pytest.raises(ConfigError, match="GG_TEST_PG_DSN"):
        open_store(config)
    monkeypatch.setenv("GG_TEST_PG_DSN", "postgresql://u:secret@127.0.0.1:1/db")
    store = open_store(config)
    assert isinstance(store, PostgresStore) and store.pool_size == 3
    assert isinstance(store.knowledge, PostgresKnowledge)


async def test_open_fails_and_ping_is_false_without_a_server() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:9/none", connect_timeout_s=1)
    assert not await store.ping()
    with pytest.raises(psycopg.OperationalError):
        await store.open()
    await store.close()


async def test_migrations_apply_once_when_replicas_start_together(pg_server: PgServer) -> None:
    async with postgres_schema(pg_server) as dsn:
        replicas = [PostgresStore(dsn, pool_size=2) for _ in range(4)]
        await asyncio.gather(*(r.open() for r in replicas))
        try:
            assert all([await r.ping() for r in replicas])
            async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
                assert await migrate(conn) == LATEST  # idempotent
                versions = await fetch(conn, "SELECT version FROM schema_version ORDER BY 1")
                assert [v for (v,) in versions] == sorted(v for v, _ in PG_MIGRATIONS)
                tables = await fetch(
                    conn,
                    "SELECT table_schema, table_name FROM information_schema.tables"
                    " WHERE table_name IN ('chunks', 'traces', 'schema_version')",
                )
                # Everything went to the schema at the head of the DSN's search path.
                [(schema,)] = await fetch(conn, "SELECT current_schema()")
                assert schema != "public" and len(tables) == 3
                assert {table_schema for table_schema, _ in tables} == {schema}
        finally:
            await asyncio.gather(*(r.close() for r in replicas))
    await replicas[0].close()  # closing twice is harmless
    assert not await replicas[0].ping()


async def test_connections_are_configured_for_filtered_hnsw(pg_server: PgServer) -> None:
    async with postgres_store(pg_server) as store:
        assert isinstance(store, PostgresStore)
        ks = store.knowledge
        await ks.ensure_kb("t", "kb")
        await ks.replace_document("t", "kb", DocumentRecord("a", "h"), chunk_list("a", 2, 4))
        assert len(await ks.dense_search("t", "kb", vec(0, 4), limit=5)) == 2
        async with store._connection() as conn:
            # Still set once pgvector has loaded (the dense search above loaded it).
            assert await fetch(conn, "SHOW hnsw.iterative_scan") == [("strict_order",)]


async def test_each_dimension_gets_its_hnsw_index(pg_server: PgServer) -> None:
    async with postgres_store(pg_server) as store:
        assert isinstance(store, PostgresStore)
        ks = store.knowledge
        await ks.ensure_kb("t", "kb")
        await ks.replace_document("t", "kb", DocumentRecord("small", "h"), chunk_list("s", 3, 4))
        await ks.replace_document("t", "kb", DocumentRecord("big", "h"), chunk_list("b", 3, 8))
        # A query only meets vectors of its own dimension (e.g. after an embedder change).
        hits = await ks.dense_search("t", "kb", vec(1, 4), limit=10)
        assert hits[0].chunk_id == "s#1" and len(hits) == 3
        assert {h.chunk_id[0] for h in await ks.dense_search("t", "kb", vec(1, 8), limit=10)} == {
            "b"
        }
        async with store._connection() as conn:
            names = await fetch(
                conn,
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'chunks_embedding_hnsw_%%'"
                " AND schemaname = current_schema() ORDER BY 1",
            )
        assert names == [("chunks_embedding_hnsw_4",), ("chunks_embedding_hnsw_8",)]
        # Another process (a fresh knowledge object) finds the index there and moves on.
        other = PostgresKnowledge(store._connection)
        await other.replace_document("t", "kb", DocumentRecord("c", "h"), chunk_list("c", 1, 4))


async def test_searches_can_use_their_indexes(pg_server: PgServer) -> None:
    async with postgres_store(pg_server) as store:
        assert isinstance(store, PostgresStore)
        ks = store.knowledge
        await ks.ensure_kb("t", "big")
        await ks.ensure_kb("t", "small")
        for i in range(6):
            chunks = chunk_list(f"d{i}", 50, 4, seed=100 * i, text="filler words")
            await ks.replace_document("t", "big", DocumentRecord(f"d{i}", "h"), chunks)
        await ks.replace_document(
            "t", "small", DocumentRecord("s", "h"), chunk_list("s", 3, 4, seed=7, text="needle")
        )
        query = vec(999, 4)
        async with store._connection() as conn:
            await conn.execute("ANALYZE")
            # Force the index paths the planner picks on large tables (small ones scan).
            await conn.execute("SET enable_seqscan = off")
            await conn.execute("SET enable_sort = off")
            plan = await fetch(
                conn, sql.SQL("EXPLAIN ") + dense_sql(4, sql.SQL("")), [query, "t", "small", 3]
            )
            assert "chunks_embedding_hnsw_4" in " ".join(r[0] for r in plan)
            # The graph's nearest neighbours are mostly the other kb's: iterative scanning
            # keeps walking until the kb filter has passed LIMIT rows, in distance order.
            rows = await fetch(conn, dense_sql(4, sql.SQL("")), [query, "t", "small", 3])
            assert [r[0] for r in rows] and {r[0] for r in rows} == {"s#0", "s#1", "s#2"}
            assert [r[1] for r in rows] == sorted(r[1] for r in rows)
            await conn.execute("RESET enable_sort")
            # The planner cannot see the tsquery (built in the query), so on this small table
            # it prefers the (tenant, kb) indexes; without them, the GIN index serves.
            async with conn.transaction():
                await conn.execute("DROP INDEX chunks_by_doc")
                await conn.execute("ALTER TABLE chunks DROP CONSTRAINT chunks_pkey")
                plan = await fetch(
                    conn,
                    sql.SQL("EXPLAIN ") + keyword_sql(sql.SQL("")),
                    [_RANK_WEIGHTS, ["needle"], "t", "big", 5],
                )
                assert "chunks_tsv" in " ".join(r[0] for r in plan)
                raise psycopg.Rollback()
            await conn.execute("RESET ALL")
            await conn.execute("SET hnsw.iterative_scan = strict_order")
        hits = await ks.keyword_search("t", "small", "needle", limit=5)
        assert {h.chunk_id for h in hits} == {"s#0", "s#1", "s#2"}


async def test_nul_characters_are_stored_as_replacement(pg_server: PgServer) -> None:
    async with postgres_store(pg_server) as store:
        ks = store.knowledge
        await ks.ensure_kb("t\x00", "kb", {"note": "a\x00b"})
        doc = DocumentRecord("d\x00", "h", source="s\x00", title="T\x00", metadata={"k": "v\x00"})
        chunk = ChunkRecord("c\x00", 0, "text\x00 here", heading_path=["H\x00"])
        await ks.replace_document("t\x00", "kb", doc, [chunk])
        got = await ks.get_document("t\x00", "kb", "d\x00")
        assert got is not None and got.metadata == {"k": "v\ufffd"}
        stored = await ks.get_chunks("t\x00", "kb", ["c\x00"])
        assert [c.text for c in stored] == ["text\ufffd here"]
        hits = await ks.keyword_search("t\x00", "kb", "here", limit=5, filters={"k": "v\x00"})
        assert [h.chunk_id for h in hits] == ["c\ufffd"]
        assert await ks.delete_document("t\x00", "kb", "d\x00")
