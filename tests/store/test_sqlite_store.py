"""The SQLite store: migrations, WAL, tenant-scoped reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from groundgate.observe.trace import Attempt, Span, Trace
from groundgate.store.migrations import SQLITE_MIGRATIONS
from groundgate.store.sqlite import SQLiteStore, migrate


def make_trace(trace_id: str, tenant: str = "default") -> Trace:
    trace = Trace(id=trace_id, tenant=tenant, endpoint="chat.completions", model="m")
    trace.spans.append(Span("generate", 0.1, 2.5))
    trace.attempts.append(Attempt("p:m", "ok", 2.4))
    trace.prompt_tokens, trace.completion_tokens, trace.cost_usd = 3, 4, 0.5
    return trace


def test_migrations_apply_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    latest = SQLITE_MIGRATIONS[-1][0]
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
