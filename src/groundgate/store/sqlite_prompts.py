"""Prompt labels, their audit and the versions used, on SQLite (semantics in :mod:`prompts`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from groundgate.store.prompts import (
    LABEL_COLUMNS,
    MOVE_COLUMNS,
    USED_COLUMNS,
    LabelMove,
    PromptLabel,
    UsedVersion,
    move_row,
)
from groundgate.store.sqlite_db import SQLiteDB, transaction

_UPSERT_LABEL = (
    f"INSERT INTO prompt_labels ({LABEL_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (name, label) DO UPDATE SET version = excluded.version,"
    " updated_at = excluded.updated_at, updated_by = excluded.updated_by"
)
_INSERT_MOVE = f"INSERT INTO prompt_label_moves ({MOVE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _label(row: Sequence[Any]) -> PromptLabel:
    return PromptLabel(row[0], row[1], int(row[2]), float(row[3]), row[4])


def _move(row: Sequence[Any]) -> LabelMove:
    return LabelMove(*row)


class SQLitePrompts:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def get_label(self, name: str, label: str) -> PromptLabel | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {LABEL_COLUMNS} FROM prompt_labels WHERE name = ? AND label = ?",
                (name, label),
            ).fetchall()
        )
        return _label(rows[0]) if rows else None

    async def list_labels(self, name: str | None = None) -> list[PromptLabel]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        query = f"SELECT {LABEL_COLUMNS} FROM prompt_labels {where} ORDER BY name, label"
        rows = await self.db.read(lambda db: db.execute(query, params).fetchall())
        return [_label(row) for row in rows]

    async def move_label(
        self,
        name: str,
        label: str,
        version: int,
        *,
        at: float,
        moved_by: str,
        tenant: str | None,
        key_id: str | None,
        note: str | None = None,
    ) -> LabelMove:
        def move(db: sqlite3.Connection) -> LabelMove:
            old = db.execute(
                "SELECT version FROM prompt_labels WHERE name = ? AND label = ?", (name, label)
            ).fetchone()
            previous = None if old is None else int(old[0])
            done = LabelMove(name, label, previous, version, at, moved_by, tenant, key_id, note)
            db.execute(_UPSERT_LABEL, (name, label, version, at, moved_by))
            db.execute(_INSERT_MOVE, move_row(done))
            return done

        return await self.db.write(lambda db: transaction(db, move))

    async def label_history(self, name: str, *, limit: int = 100) -> list[LabelMove]:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {MOVE_COLUMNS} FROM prompt_label_moves WHERE name = ?"
                " ORDER BY seq DESC LIMIT ?",
                (name, limit),
            ).fetchall()
        )
        return [_move(row) for row in rows]

    async def mark_used(self, name: str, version: int, digest: str, *, at: float) -> str:
        def mark(db: sqlite3.Connection) -> str:
            db.execute(
                f"INSERT OR IGNORE INTO prompt_versions_used ({USED_COLUMNS}) VALUES (?, ?, ?, ?)",
                (name, version, digest, at),
            )
            row = db.execute(
                "SELECT digest FROM prompt_versions_used WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
            return str(row[0])

        return await self.db.write(mark)

    async def used_versions(self, name: str | None = None) -> list[UsedVersion]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        query = f"SELECT {USED_COLUMNS} FROM prompt_versions_used {where} ORDER BY name, version"
        rows = await self.db.read(lambda db: db.execute(query, params).fetchall())
        return [UsedVersion(row[0], int(row[1]), row[2], float(row[3])) for row in rows]
