"""The SQLite store: migrations, WAL, tenant-scoped reads, giving pruned space back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from groundgate.config_retention import RetentionConfig
from groundgate.observe.trace import Attempt, Span, Trace
from groundgate.store.migrations import SQLITE_MIGRATIONS
from groundgate.store.pruner import Pruner
from groundgate.store.retention import (
    RETAINED_KINDS,
    Position,
    RetainedKind,
    delete_query,
    newest_query,
)
from groundgate.store.runs import idle_runs_query
from groundgate.store.sqlite import SQLiteStore, migrate


def make_trace(trace_id: str, tenant: str = "default") -> Trace:
    trace = Trace(id=trace_id, tenant=tenant, endpoint="chat.completions", model="m")
    trace.spans.append(Span("generate", 0.1, 2.5))
    trace.attempts.append(Attempt("p:m", "ok", 2.4))
    trace.prompt_tokens, trace.completion_tokens, trace.cost_usd = 3, 4, 0.5
    return trace


def test_migrations_apply_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    latest = max(v for v, _ in SQLITE_MIGRATIONS)
    assert migrate(conn) == latest
    assert migrate(conn) == latest  # idempotent
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "traces" in tables


async def test_write_and_read_traces(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "sub" / "db.sqlite"))
    await store.open()
    try:
        assert await store.ping()
        await store.write_traces([make_trace("a"), make_trace("b", tenant="other")])
        got = await store.get_trace("default", "a")
        assert got is not None
        assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        assert got["spans"][0]["name"] == "generate"
        assert got["attempts"][0]["deployment"] == "p:m"
        # Tenant-scoped: another tenant's trace id finds nothing.
        assert await store.get_trace("default", "b") is None
        assert await store.get_trace("other", "b") is not None
        assert await store.get_trace("default", "' OR '1'='1") is None
    finally:
        await store.close()
    journal = (
        sqlite3.connect(tmp_path / "sub" / "db.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    )
    assert journal == "wal"


async def test_pruning_gives_the_space_back(tmp_path: Path) -> None:
    # A database created now vacuums incrementally: pages of pruned rows leave the file.
    store = SQLiteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    try:

        def pages(db: sqlite3.Connection) -> tuple[int, int]:
            page_count = db.execute("PRAGMA page_count").fetchone()[0]
            return int(page_count), int(db.execute("PRAGMA freelist_count").fetchone()[0])

        traces = [make_trace(f"t{i}") for i in range(2000)]
        for trace in traces:
            trace.attrs["padding"] = "x" * 2000
            trace.created_at = time.time() - 50 * 86400
        await store.write_traces(traces)
        full, _ = await store.db.read(pages)
        deleted = await Pruner(store.retention, RetentionConfig(batch_size=300)).run_once()
        assert deleted["traces"] == 2000
        after, free = await store.db.read(pages)
        assert free == 0 and after < full / 4, (full, after)
    finally:
        await store.close()


async def test_migration_stamps_cached_vectors_saved_before_it(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for version, sql in SQLITE_MIGRATIONS[:4]:  # a database of the release before retention
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO embedding_cache VALUES ('m', 'h', ?)", (b"\0" * 16,))
    conn.execute("COMMIT")
    conn.close()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        row = await store.db.read(
            lambda db: db.execute("SELECT created_at, kind FROM embedding_cache").fetchone()
        )
        # Counted as a document's vector saved at the upgrade: no limit removes it at once.
        assert row[1] == "document" and abs(row[0] - time.time()) < 60
        assert await store.knowledge.get_embeddings("m", ["h"])
        assert (await Pruner(store.retention, RetentionConfig()).run_once())["embeddings"] == 0
    finally:
        await store.close()


def test_every_pruning_query_is_an_index_scan(tmp_path: Path) -> None:
    """Finding the cutoff and deleting a batch read an index (``SCAN table`` alone would read
    every row of a large table on each pass), and so does finding the runs left in flight."""
    conn = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    migrate(conn)
    queries = [
        *(newest_query(kind, "?", before=1000.0, skip=0) for kind in RETAINED_KINDS),
        *(newest_query(kind, "?", before=None, skip=10) for kind in RETAINED_KINDS),
        *(delete_query(kind, "?", cut_for(kind), 100) for kind in RETAINED_KINDS),
    ]
    plans = {q.sql: plan(conn, q.sql, q.params) for q in queries}
    idle, params = idle_runs_query("?", status="running", updated_before=1.0, after=None, limit=5)
    plans[idle] = plan(conn, idle, params)
    for sql, steps in plans.items():
        scans = [s for s in steps if s.startswith(("SCAN", "SEARCH"))]
        assert scans and all("INDEX" in s or "PRIMARY KEY" in s for s in scans), (sql, steps)


def cut_for(kind: RetainedKind) -> Position:
    """A position of a row of ``kind`` (feedback's key has three columns)."""
    return Position(1000.0, ("acme", "t", "s") if kind == "feedback" else ("acme", "t"))


def plan(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[str]:
    return [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params))]
