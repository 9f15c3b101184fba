"""Retention on SQLite: the shared queries of :mod:`retention`, and incremental vacuum.

Reads (finding where to cut) run on a reader connection beside the writer (WAL); each
deletion batch is one ``BEGIN IMMEDIATE`` transaction on the writer thread, so writes queued
meanwhile (traces, ingestion) run between two batches.
"""

from __future__ import annotations

import sqlite3

from groundgate.store.retention import (
    Position,
    RetainedKind,
    delete_query,
    newest_query,
    position,
)
from groundgate.store.sqlite_db import SQLiteDB, transaction

# Free pages given back per write (4 MiB at the default page size): one short lock at a time.
_VACUUM_PAGES = 1024
_AUTO_VACUUM_INCREMENTAL = 2


class SQLiteRetention:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def newest(
        self, kind: RetainedKind, *, before: float | None = None, skip: int = 0
    ) -> Position | None:
        query = newest_query(kind, "?", before=before, skip=skip)
        row = await self.db.read(lambda db: db.execute(query.sql, query.params).fetchone())
        return position(row)

    async def delete_upto(self, kind: RetainedKind, upto: Position, limit: int) -> int:
        query = delete_query(kind, "?", upto, limit)
        return await self.db.write(
            lambda db: transaction(db, lambda d: d.execute(query.sql, query.params).rowcount)
        )

    async def reclaim(self) -> None:
        left = await self.db.write(_vacuum_step)
        while left:  # stop as soon as a step frees nothing (it never should)
            left, before = await self.db.write(_vacuum_step), left
            if left >= before:
                break


def _vacuum_step(db: sqlite3.Connection) -> int:
    """Give back up to ``_VACUUM_PAGES`` free pages; return how many are left."""
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != _AUTO_VACUUM_INCREMENTAL:
        return 0  # created before incremental vacuum: free pages are reused in place
    if not db.execute("PRAGMA freelist_count").fetchone()[0]:
        return 0
    # executescript steps the pragma to the end; execute would free a single page.
    db.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})")
    return int(db.execute("PRAGMA freelist_count").fetchone()[0])
