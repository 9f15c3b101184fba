"""Prompt labels, their audit and the versions used, on PostgreSQL; semantics mirror
:mod:`sqlite_prompts` (the conformance suite holds both to them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from groundgate.store.postgres_knowledge import Connect, pg_text
from groundgate.store.prompts import (
    LABEL_COLUMNS,
    MOVE_COLUMNS,
    USED_COLUMNS,
    LabelMove,
    PromptLabel,
    UsedVersion,
    move_row,
)

_UPSERT_LABEL = f"""
INSERT INTO prompt_labels ({LABEL_COLUMNS}) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (name, label) DO UPDATE SET version = excluded.version,
    updated_at = excluded.updated_at, updated_by = excluded.updated_by"""
_INSERT_MOVE = (
    f"INSERT INTO prompt_label_moves ({MOVE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# Two moves of one label serialise on this lock (the label's row may not exist yet, so a row
# lock cannot do it); the key is the label's, so other labels move freely.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 9))"


def _label(row: Sequence[Any]) -> PromptLabel:
    return PromptLabel(row[0], row[1], int(row[2]), float(row[3]), row[4])


def _text(value: str | None) -> str | None:
    return None if value is None else pg_text(value)


class PostgresPrompts:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def get_label(self, name: str, label: str) -> PromptLabel | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {LABEL_COLUMNS} FROM prompt_labels WHERE name = %s AND label = %s",
                (pg_text(name), pg_text(label)),
            )
            row = await cur.fetchone()
        return None if row is None else _label(row)

    async def list_labels(self, name: str | None = None) -> list[PromptLabel]:
        where, params = ("WHERE name = %s", [pg_text(name)]) if name is not None else ("", [])
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {LABEL_COLUMNS} FROM prompt_labels {where} ORDER BY name, label", params
            )
            rows = await cur.fetchall()
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
        name, label = pg_text(name), pg_text(label)
        async with self._connect() as conn, conn.transaction():
            await conn.execute(_LOCK, (f"{name}\x1f{label}",))
            cur = await conn.execute(
                "SELECT version FROM prompt_labels WHERE name = %s AND label = %s", (name, label)
            )
            old = await cur.fetchone()
            previous = None if old is None else int(old[0])
            done = LabelMove(
                name,
                label,
                previous,
                version,
                at,
                pg_text(moved_by),
                _text(tenant),
                _text(key_id),
                _text(note),
            )
            await conn.execute(_UPSERT_LABEL, (name, label, version, at, done.moved_by))
            await conn.execute(_INSERT_MOVE, move_row(done))
        return done

    async def label_history(self, name: str, *, limit: int = 100) -> list[LabelMove]:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {MOVE_COLUMNS} FROM prompt_label_moves WHERE name = %s"
                " ORDER BY seq DESC LIMIT %s",
                (pg_text(name), limit),
            )
            rows = await cur.fetchall()
        return [LabelMove(*row) for row in rows]

    async def mark_used(self, name: str, version: int, digest: str, *, at: float) -> str:
        async with self._connect() as conn:
            await conn.execute(
                f"INSERT INTO prompt_versions_used ({USED_COLUMNS}) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (name, version) DO NOTHING",
                (pg_text(name), version, digest, at),
            )
            cur = await conn.execute(
                "SELECT digest FROM prompt_versions_used WHERE name = %s AND version = %s",
                (pg_text(name), version),
            )
            row = await cur.fetchone()
        if row is None:  # pragma: no cover - the insert or an earlier one made it
            raise RuntimeError(f"{name}@{version}: used version not recorded")
        return str(row[0])

    async def used_versions(self, name: str | None = None) -> list[UsedVersion]:
        where, params = ("WHERE name = %s", [pg_text(name)]) if name is not None else ("", [])
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {USED_COLUMNS} FROM prompt_versions_used {where} ORDER BY name, version",
                params,
            )
            rows = await cur.fetchall()
        return [UsedVersion(row[0], int(row[1]), row[2], float(row[3])) for row in rows]
