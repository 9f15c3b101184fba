"""SQLite connections off the event loop: one writer thread (SQLite has one writer anyway)
and a few reader threads with their own connections (WAL lets readers run beside it)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from groundgate.store.migrations import SQLITE_MIGRATIONS

T = TypeVar("T")


class SQLiteDB:
    def __init__(self, path: str, *, readers: int = 2) -> None:
        self.path = path
        # An in-memory database exists once per connection, so it gets the writer only.
        self._memory = path == ":memory:"
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groundgate-sqlw")
        self._readers = ThreadPoolExecutor(
            max_workers=max(1, readers), thread_name_prefix="groundgate-sqlr"
        )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # Before WAL, which writes the file: only a database created with it can give the pages
        # of pruned rows back to the file system (SQLiteRetention.reclaim). An older database
        # keeps reusing them for new rows instead; a one-off VACUUM converts it.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._conn_lock:
            self._connections.append(conn)
        return conn

    def _thread_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("store is closed")
            conn = self._connect()
            self._local.conn = conn
        return conn

    async def open(self) -> None:
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        await self.write(lambda db: migrate(db))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: fn(self._thread_conn()))

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        pool = self._writer if self._memory else self._readers
        return await loop.run_in_executor(pool, lambda: fn(self._thread_conn()))

    async def close(self) -> None:
        self._closed = True
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        with self._conn_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in one IMMEDIATE transaction (takes the write lock up front, so two
    processes never deadlock upgrading read locks)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database's ``user_version``; return the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        # Sorted: migrations are appended by several modules and branches.
        for version, sql in sorted(SQLITE_MIGRATIONS):
            if version <= current:
                continue
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")
            current = version
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return current
