"""The SQLite store: migrations, WAL, tenant-scoped reads, giving pruned space back."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from groundgate.config_retention import RetentionConfig
from groundgate.observe.trace import Attempt, Span, Trace
from groundgate.store.migrations import SQLITE_MIGRATIONS
from groundgate.store.pruner import Pruner
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
