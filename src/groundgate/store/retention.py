"""What retention may delete, and how, the same for every store backend.

Rows are deleted oldest first, in the order ``(time, key)``: the table's time column, then its
primary key, which breaks ties (vectors saved in one batch share a timestamp), so the order is
total. A run works out one :class:`Position` per kind, the newest row that must go, from the
age limit and the row cap, then deletes everything at or before it in small batches, each its
own short transaction. Rows written meanwhile are newer, so they are never touched, and two
replicas pruning at once delete the same rows (a cap is never applied twice over).

Some kinds are only part of their table: a *filter* keeps the rest out of reach, of the cap's
count as well as of deletion (question vectors apart from document vectors; agent runs still
running or waiting for approval; reviews not yet decided).

The SQL is written here once, with the placeholder left to the backend ("?" or "%s"); every
query is an index scan (an index on ``(time, key...)`` of each table: the ``*_by_age`` indexes
of migrations 5 and 13).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

RetainedKind = Literal[
    "traces",
    "embeddings",
    "question_vectors",
    "feedback",
    "agent_runs",
    "reviews",
    "eval_runs",
]
RETAINED_KINDS: tuple[RetainedKind, ...] = (
    "traces",
    "embeddings",
    "question_vectors",
    "feedback",
    "agent_runs",
    "reviews",
    "eval_runs",
)
# Agent runs in these statuses may still go on (here, on another replica, or after a
# decision): retention never deletes them. Runs a crashed gateway left ``running`` are failed
# at the next start (``agents/reaper.py``); overdue approvals expire when next read.
UNFINISHED_RUN_STATUSES: tuple[str, ...] = ("running", "pending_approval")


def embedding_kind(*, questions: bool) -> str:
    """The ``embedding_cache.kind`` of a saved vector."""
    return "query" if questions else "document"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A row's place in pruning order: its time, then its key."""

    at: float
    key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Filter:
    """The rows of a table that belong to a kind: a condition with one ``{mark}`` per value."""

    condition: str
    values: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    time: str  # the column rows age by
    key: tuple[str, ...]  # the primary key, in index order
    filter: _Filter | None = None


def _not_in(column: str, values: tuple[str, ...]) -> _Filter:
    return _Filter(f"{column} NOT IN ({', '.join(['{mark}'] * len(values))})", values)


_TABLES: dict[RetainedKind, _Table] = {
    "traces": _Table("traces", "created_at", ("tenant", "id")),
    "embeddings": _Table(
        "embedding_cache",
        "created_at",
        ("model", "content_hash"),
        _Filter("kind = {mark}", (embedding_kind(questions=False),)),
    ),
    "question_vectors": _Table(
        "embedding_cache",
        "created_at",
        ("model", "content_hash"),
        _Filter("kind = {mark}", (embedding_kind(questions=True),)),
    ),
    "feedback": _Table("feedback", "created_at", ("tenant", "trace_id", "source")),
    # A run ages from its last change (when it finished), so one that waited long for
    # approval is still kept the whole period after it ended.
    "agent_runs": _Table(
        "agent_runs", "updated_at", ("tenant", "id"), _not_in("status", UNFINISHED_RUN_STATUSES)
    ),
    # A review ages from its decision; pending ones (no decision yet) are never deleted.
    "reviews": _Table("reviews", "decided_at", ("tenant", "id"), _Filter("decided_at IS NOT NULL")),
    "eval_runs": _Table("eval_runs", "created_at", ("tenant", "id")),
}


@dataclass(frozen=True, slots=True)
class RetentionQuery:
    """One statement and its parameters, ready for a backend's cursor."""

    sql: str
    params: tuple[object, ...]


def newest_query(
    kind: RetainedKind, mark: str, *, before: float | None, skip: int
) -> RetentionQuery:
    """The newest row older than ``before`` (any row when None), after skipping the ``skip``
    newest of them: ``(time, *key)``, or no row."""
    table = _TABLES[kind]
    columns = ", ".join((table.time, *table.key))
    where, params = _kind_filter(table, mark)
    if before is not None:
        where.append(f"{table.time} < {mark}")
        params.append(before)
    newest_first = ", ".join(f"{c} DESC" for c in (table.time, *table.key))
    sql = (
        f"SELECT {columns} FROM {table.name}{_where(where)}"
        f" ORDER BY {newest_first} LIMIT 1 OFFSET {mark}"
    )
    return RetentionQuery(sql, (*params, skip))


def delete_query(kind: RetainedKind, mark: str, upto: Position, limit: int) -> RetentionQuery:
    """Delete at most ``limit`` of the oldest rows at or before ``upto``."""
    table = _TABLES[kind]
    keys = ", ".join(table.key)
    order = ", ".join((table.time, *table.key))
    where, params = _kind_filter(table, mark)
    where.append(f"({order}) <= ({', '.join([mark] * (1 + len(table.key)))})")
    params += [upto.at, *upto.key]
    sql = (
        f"DELETE FROM {table.name} WHERE ({keys}) IN (SELECT {keys} FROM {table.name}"
        f"{_where(where)} ORDER BY {order} LIMIT {mark})"
    )
    return RetentionQuery(sql, (*params, limit))


def _kind_filter(table: _Table, mark: str) -> tuple[list[str], list[object]]:
    if table.filter is None:
        return [], []
    return [table.filter.condition.format(mark=mark)], list(table.filter.values)


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def position(row: tuple[Any, ...] | None) -> Position | None:
    """A :func:`newest_query` row as a :class:`Position`."""
    if row is None:
        return None
    at, *key = row
    return Position(float(at), tuple(str(k) for k in key))


class RetentionStore(Protocol):
    """Pruning primitives; the policy (what to keep, when, how fast) is ``store/pruner.py``."""

    async def newest(
        self, kind: RetainedKind, *, before: float | None = None, skip: int = 0
    ) -> Position | None:
        """The newest row of ``kind`` older than ``before`` (any when None), after skipping
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
