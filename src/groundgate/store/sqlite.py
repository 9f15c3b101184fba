"""SQLite store (WAL). Blocking calls run in one dedicated thread so the loop never waits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from groundgate.observe.trace import Trace
from groundgate.store.migrations import SQLITE_MIGRATIONS

T = TypeVar("T")


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # One thread owns the connection: SQLite serialises writers anyway, and a single
        # thread keeps transactions simple.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groundgate-sqlite")
        self._lock = threading.Lock()

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
        self._conn = conn

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(_close)
        self._executor.shutdown(wait=True)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def ping(self) -> bool:
        def _ping() -> bool:
            return bool(self._db().execute("SELECT 1").fetchone() == (1,))

        try:
            return bool(await self._run(_ping))
        except Exception:
            return False

    async def write_traces(self, traces: list[Trace]) -> None:
        def _write() -> None:
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
                )
                for t in traces
            ]
            db = self._db()
            with self._lock:
                db.execute("BEGIN")
                try:
                    db.executemany(
                        "INSERT OR REPLACE INTO traces (id, tenant, created_at, endpoint, model,"
                        " source, deployment, status, http_status, prompt_tokens,"
                        " completion_tokens, cost_usd, latency_ms, data)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        rows,
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

        await self._run(_write)

    async def get_trace(self, tenant: str, trace_id: str) -> dict[str, Any] | None:
        def _get() -> bytes | None:
            row = (
                self._db()
                .execute("SELECT data FROM traces WHERE tenant = ? AND id = ?", (tenant, trace_id))
                .fetchone()
            )
            return None if row is None else bytes(row[0])

        data = await self._run(_get)
        if data is None:
            return None
        result: dict[str, Any] = orjson.loads(data)
        return result


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database's ``user_version``; return the version."""
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for version, sql in SQLITE_MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN")
        try:
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current
