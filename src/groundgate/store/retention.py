"""What retention may delete, and how, the same for every store backend.

Rows are deleted oldest first, in the order ``(created_at, key)`` (the key breaks ties, so the
order is total: vectors saved in one batch share a timestamp). A run works out one
:class:`Position` per kind, the newest row that must go, from the age limit and the row cap,
then deletes everything at or before it in small batches, each its own short transaction.
Rows written meanwhile are newer, so they are never touched, and two replicas pruning at once
delete the same rows (a cap is never applied twice over).

The SQL is written here once, with the placeholder left to the backend ("?" or "%s"); every
query is an index scan (the ``*_by_age`` indexes of migration 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

RetainedKind = Literal["traces", "embeddings", "question_vectors"]
RETAINED_KINDS: tuple[RetainedKind, ...] = ("traces", "embeddings", "question_vectors")


def embedding_kind(*, questions: bool) -> str:
    """The ``embedding_cache.kind`` of a saved vector."""
    return "query" if questions else "document"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A row's place in pruning order."""

    created_at: float
    key: tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    key: tuple[str, str]
    kind: str | None  # embedding_cache.kind, for the rows of the embedding cache


_TABLES: dict[RetainedKind, _Table] = {
    "traces": _Table("traces", ("tenant", "id"), None),
    "embeddings": _Table(
        "embedding_cache", ("model", "content_hash"), embedding_kind(questions=False)
    ),
    "question_vectors": _Table(
        "embedding_cache", ("model", "content_hash"), embedding_kind(questions=True)
    ),
}


@dataclass(frozen=True, slots=True)
class RetentionQuery:
    """One statement and its parameters, ready for a backend's cursor."""

    sql: str
    params: tuple[object, ...]


def newest_query(
    kind: RetainedKind, mark: str, *, before: float | None, skip: int
) -> RetentionQuery:
    """The newest row created before ``before`` (any row when None), after skipping the
    ``skip`` newest of them: ``(created_at, key1, key2)``, or no row."""
    table = _TABLES[kind]
    k1, k2 = table.key
    where, params = _kind_filter(table, mark)
    if before is not None:
        where.append(f"created_at < {mark}")
        params.append(before)
    sql = (
        f"SELECT created_at, {k1}, {k2} FROM {table.name}{_where(where)}"
        f" ORDER BY created_at DESC, {k1} DESC, {k2} DESC LIMIT 1 OFFSET {mark}"
    )
    return RetentionQuery(sql, (*params, skip))


def delete_query(kind: RetainedKind, mark: str, upto: Position, limit: int) -> RetentionQuery:
    """Delete at most ``limit`` of the oldest rows at or before ``upto``."""
    table = _TABLES[kind]
    k1, k2 = table.key
    where, params = _kind_filter(table, mark)
    where.append(f"(created_at, {k1}, {k2}) <= ({mark}, {mark}, {mark})")
    params += [upto.created_at, *upto.key]
    sql = (
        f"DELETE FROM {table.name} WHERE ({k1}, {k2}) IN (SELECT {k1}, {k2} FROM {table.name}"
        f"{_where(where)} ORDER BY created_at, {k1}, {k2} LIMIT {mark})"
    )
    return RetentionQuery(sql, (*params, limit))


def _kind_filter(table: _Table, mark: str) -> tuple[list[str], list[object]]:
    if table.kind is None:
        return [], []
    return [f"kind = {mark}"], [table.kind]


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def position(row: tuple[Any, ...] | None) -> Position | None:
    """A :func:`newest_query` row as a :class:`Position`."""
    if row is None:
        return None
    created_at, k1, k2 = row
    return Position(float(created_at), (str(k1), str(k2)))


class RetentionStore(Protocol):
    """Pruning primitives; the policy (what to keep, when, how fast) is ``store/pruner.py``."""

    async def newest(
        self, kind: RetainedKind, *, before: float | None = None, skip: int = 0
    ) -> Position | None:
        """The newest row of ``kind`` created before ``before`` (any when None), after skipping
        the ``skip`` newest of those; None when there is none. A read: it takes no lock."""
        ...

    async def delete_upto(self, kind: RetainedKind, upto: Position, limit: int) -> int:
        """Delete at most ``limit`` of the oldest rows of ``kind`` at or before ``upto``, in one
        short transaction; return how many went (fewer than ``limit``: none are left)."""
        ...

    async def reclaim(self) -> None:
        """Give the space of deleted rows back where the database does not do it by itself
        (SQLite: an incremental vacuum, in short steps); nothing for PostgreSQL, whose
        autovacuum makes it reusable."""
        ...
