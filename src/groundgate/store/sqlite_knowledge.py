"""Knowledge bases on SQLite: FTS5 (porter-stemmed BM25) for keywords, float32 blobs for
vectors searched exactly in an in-process matrix that is rebuilt when the kb version moves.

FTS5 keeps one index for all knowledge bases; a per-kb ``scope`` token ANDed into every query
makes the index itself do the kb intersection (weight 0 in the ranking). BM25's document
frequencies are therefore counted over the whole table rather than per kb.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from groundgate.store.knowledge import (
    ChunkRecord,
    DocumentRecord,
    Filters,
    Hit,
    KnowledgeBase,
    StoredChunk,
    Vector,
    check_filters,
    keyword_terms,
)
from groundgate.store.retention import embedding_kind
from groundgate.store.sqlite_db import SQLiteDB, transaction

# Column weights for bm25(): scope (never ranks), title, headings, text.
_BM25 = "bm25(chunks_fts, 0.0, 1.0, 0.6, 1.0)"
_IN_BATCH = 500


def scope_token(tenant: str, kb: str) -> str:
    return "s" + hashlib.sha1(f"{tenant}\0{kb}".encode()).hexdigest()[:20]


@dataclass
class _DenseIndex:
    version: int
    rowids: np.ndarray  # int64
    chunk_ids: list[str]
    matrix: np.ndarray  # (n, d) float32, unit rows


class SQLiteKnowledge:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db
        self._dense: dict[tuple[str, str], _DenseIndex] = {}
        self._dense_lock = threading.Lock()

    # -- knowledge bases -----------------------------------------------------------------

    async def ensure_kb(
        self, tenant: str, name: str, settings: dict[str, Any] | None = None
    ) -> KnowledgeBase:
        def _ensure(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO knowledge_bases (tenant, name, scope, created_at, settings)"
                " VALUES (?,?,?,?,?) ON CONFLICT (tenant, name) DO NOTHING",
                (
                    tenant,
                    name,
                    scope_token(tenant, name),
                    time.time(),
                    orjson.dumps(settings or {}).decode(),
                ),
            )

        await self.db.write(_ensure)
        kb = await self.get_kb(tenant, name)
        assert kb is not None
        return kb

    async def get_kb(self, tenant: str, name: str) -> KnowledgeBase | None:
        rows = await self.db.read(lambda db: _kb_rows(db, tenant, name))
        return rows[0] if rows else None

    async def list_kbs(self, tenant: str) -> list[KnowledgeBase]:
        return await self.db.read(lambda db: _kb_rows(db, tenant, None))

    async def kb_version(self, tenant: str, name: str) -> str | None:
        row = await self.db.read(
            lambda db: db.execute(
                "SELECT created_at, version FROM knowledge_bases WHERE tenant = ? AND name = ?",
                (tenant, name),
            ).fetchone()
        )
        return None if row is None else f"{row[0]!r}:{row[1]}"

    async def delete_kb(self, tenant: str, name: str) -> bool:
        def _delete(db: sqlite3.Connection) -> bool:
            db.execute(
                "DELETE FROM chunks_fts WHERE rowid IN"
                " (SELECT rowid FROM chunks WHERE tenant = ? AND kb = ?)",
                (tenant, name),
            )
            db.execute("DELETE FROM chunks WHERE tenant = ? AND kb = ?", (tenant, name))
            db.execute("DELETE FROM documents WHERE tenant = ? AND kb = ?", (tenant, name))
            cur = db.execute(
                "DELETE FROM knowledge_bases WHERE tenant = ? AND name = ?", (tenant, name)
            )
            return cur.rowcount > 0

        deleted = await self.db.write(lambda db: transaction(db, _delete))
        with self._dense_lock:
            self._dense.pop((tenant, name), None)
        return deleted

    # -- documents -----------------------------------------------------------------------

    async def get_document(self, tenant: str, kb: str, doc_id: str) -> DocumentRecord | None:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE tenant = ? AND kb = ? AND id = ?",
                (tenant, kb, doc_id),
            ).fetchall()
        )
        return _doc(rows[0]) if rows else None

    async def list_documents(
        self, tenant: str, kb: str, *, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE tenant = ? AND kb = ?"
                " ORDER BY id LIMIT ? OFFSET ?",
                (tenant, kb, limit, offset),
            ).fetchall()
        )
        return [_doc(r) for r in rows]

    async def document_hashes(self, tenant: str, kb: str, ids: list[str]) -> dict[str, str]:
        def _hashes(db: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(ids), _IN_BATCH):
                part = ids[start : start + _IN_BATCH]
                marks = ",".join("?" * len(part))
                for doc_id, digest in db.execute(
                    f"SELECT id, content_hash FROM documents WHERE tenant = ? AND kb = ?"
                    f" AND id IN ({marks})",
                    (tenant, kb, *part),
                ):
                    found[doc_id] = digest
            return found

        return await self.db.read(_hashes)

    async def replace_document(
        self, tenant: str, kb: str, doc: DocumentRecord, chunks: list[ChunkRecord]
    ) -> int:
        now = time.time()
        scope = scope_token(tenant, kb)
        chunk_rows = [
            (
                tenant,
                kb,
                doc.id,
                c.id,
                c.position,
                c.text,
                orjson.dumps(c.heading_path).decode(),
                c.token_count,
                None
                if c.embedding is None
                else np.asarray(c.embedding, dtype=np.float32).tobytes(),
            )
            for c in chunks
        ]
        fts_rows = [(scope, doc.title, " / ".join(c.heading_path), c.text) for c in chunks]

        def _replace(db: sqlite3.Connection) -> int:
            version = _bump(db, tenant, kb)  # first: fails cleanly if the kb does not exist
            _delete_doc_rows(db, tenant, kb, doc.id)
            db.execute(
                "INSERT INTO documents (tenant, kb, id, content_hash, source, title, metadata,"
                " chunk_count, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (tenant, kb, id) DO UPDATE SET content_hash = excluded.content_hash,"
                " source = excluded.source, title = excluded.title, metadata = excluded.metadata,"
                " chunk_count = excluded.chunk_count, updated_at = excluded.updated_at",
                (
                    tenant,
                    kb,
                    doc.id,
                    doc.content_hash,
                    doc.source,
                    doc.title,
                    orjson.dumps(doc.metadata).decode(),
                    len(chunks),
                    now,
                    now,
                ),
            )
            for row, fts in zip(chunk_rows, fts_rows, strict=True):
                cur = db.execute(
                    "INSERT INTO chunks (tenant, kb, doc_id, id, position, text, heading_path,"
                    " token_count, embedding) VALUES (?,?,?,?,?,?,?,?,?)",
                    row,
                )
                db.execute(
                    "INSERT INTO chunks_fts (rowid, scope, title, headings, text)"
                    " VALUES (?,?,?,?,?)",
                    (cur.lastrowid, *fts),
                )
            return version

        return await self.db.write(lambda db: transaction(db, _replace))

    async def delete_document(self, tenant: str, kb: str, doc_id: str) -> bool:
        def _delete(db: sqlite3.Connection) -> bool:
            if not _delete_doc_rows(db, tenant, kb, doc_id):
                return False
            _bump(db, tenant, kb)
            return True

        return await self.db.write(lambda db: transaction(db, _delete))

    # -- search --------------------------------------------------------------------------

    async def keyword_search(
        self, tenant: str, kb: str, query: str, *, limit: int, filters: Filters | None = None
    ) -> list[Hit]:
        terms = keyword_terms(query)
        if not terms:
            return []
        match = (
            f"scope:{scope_token(tenant, kb)} AND ("
            + " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
            + ")"
        )
        where, params = _filter_sql(tenant, kb, filters)

        def _search(db: sqlite3.Connection) -> list[Hit]:
            rows = db.execute(
                f"SELECT c.id, {_BM25} AS score FROM chunks_fts JOIN chunks c"
                f" ON c.rowid = chunks_fts.rowid WHERE chunks_fts MATCH ?{where}"
                " ORDER BY score LIMIT ?",
                (match, *params, limit),
            ).fetchall()
            return [Hit(chunk_id, -float(score)) for chunk_id, score in rows]

        return await self.db.read(_search)

    async def dense_search(
        self, tenant: str, kb: str, vector: Vector, *, limit: int, filters: Filters | None = None
    ) -> list[Hit]:
        index = await self._dense_index(tenant, kb)
        if index is None or not len(index.chunk_ids):
            return []
        scores = index.matrix @ np.asarray(vector, dtype=np.float32)
        if filters:
            where, params = _filter_sql(tenant, kb, filters)
            allowed = await self.db.read(
                lambda db: np.fromiter(
                    (
                        r[0]
                        for r in db.execute(
                            f"SELECT c.rowid FROM chunks c WHERE c.tenant = ? AND c.kb = ?{where}",
                            (tenant, kb, *params),
                        )
                    ),
                    dtype=np.int64,
                )
            )
            scores = np.where(np.isin(index.rowids, allowed), scores, -np.inf)
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [Hit(index.chunk_ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    async def _dense_index(self, tenant: str, kb: str) -> _DenseIndex | None:
        def _load(db: sqlite3.Connection) -> _DenseIndex | None:
            row = db.execute(
                "SELECT version FROM knowledge_bases WHERE tenant = ? AND name = ?", (tenant, kb)
            ).fetchone()
            if row is None:
                return None
            version = int(row[0])
            with self._dense_lock:
                cached = self._dense.get((tenant, kb))
                if cached is not None and cached.version == version:
                    return cached
            rows = db.execute(
                "SELECT rowid, id, embedding FROM chunks WHERE tenant = ? AND kb = ?"
                " AND embedding IS NOT NULL ORDER BY rowid",
                (tenant, kb),
            ).fetchall()
            if rows:
                matrix = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
            else:
                matrix = np.zeros((0, 0), dtype=np.float32)
            index = _DenseIndex(
                version,
                np.array([r[0] for r in rows], dtype=np.int64),
                [r[1] for r in rows],
                matrix,
            )
            with self._dense_lock:
                self._dense[(tenant, kb)] = index
            return index

        return await self.db.read(_load)

    async def get_chunks(self, tenant: str, kb: str, ids: list[str]) -> list[StoredChunk]:
        def _get(db: sqlite3.Connection) -> list[StoredChunk]:
            found: dict[str, StoredChunk] = {}
            for start in range(0, len(ids), _IN_BATCH):
                part = ids[start : start + _IN_BATCH]
                marks = ",".join("?" * len(part))
                for r in db.execute(
                    "SELECT c.id, c.doc_id, c.position, c.text, d.title, d.source,"
                    " c.heading_path, d.metadata, c.token_count FROM chunks c JOIN documents d"
                    " ON d.tenant = c.tenant AND d.kb = c.kb AND d.id = c.doc_id"
                    f" WHERE c.tenant = ? AND c.kb = ? AND c.id IN ({marks})",
                    (tenant, kb, *part),
                ):
                    found[r[0]] = StoredChunk(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        r[5],
                        orjson.loads(r[6]),
                        orjson.loads(r[7]),
                        r[8],
                    )
            return [found[i] for i in ids if i in found]

        return await self.db.read(_get)

    # -- embedding cache -----------------------------------------------------------------

    async def get_embeddings(self, model: str, hashes: list[str]) -> dict[str, Vector]:
        def _get(db: sqlite3.Connection) -> dict[str, Vector]:
            found: dict[str, Vector] = {}
            for start in range(0, len(hashes), _IN_BATCH):
                part = hashes[start : start + _IN_BATCH]
                marks = ",".join("?" * len(part))
                for digest, blob in db.execute(
                    "SELECT content_hash, vector FROM embedding_cache WHERE model = ?"
                    f" AND content_hash IN ({marks})",
                    (model, *part),
                ):
                    found[digest] = np.frombuffer(blob, dtype=np.float32)
            return found

        return await self.db.read(_get)

    async def put_embeddings(
        self, model: str, vectors: dict[str, Vector], *, questions: bool = False
    ) -> None:
        now, kind = time.time(), embedding_kind(questions=questions)
        rows = [
            (model, h, np.asarray(v, dtype=np.float32).tobytes(), now, kind)
            for h, v in vectors.items()
        ]
        await self.db.write(
            lambda db: transaction(
                db,
                lambda d: d.executemany(
                    "INSERT OR IGNORE INTO embedding_cache"
                    " (model, content_hash, vector, created_at, kind) VALUES (?,?,?,?,?)",
                    rows,
                ),
            )
        )


_DOC_COLUMNS = "id, content_hash, source, title, metadata, chunk_count, created_at, updated_at"


def _doc(r: Any) -> DocumentRecord:
    return DocumentRecord(r[0], r[1], r[2], r[3], orjson.loads(r[4]), r[5], r[6], r[7])


def _kb_rows(db: sqlite3.Connection, tenant: str, name: str | None) -> list[KnowledgeBase]:
    sql = (
        "SELECT k.name, k.created_at, k.version, k.settings,"
        " (SELECT count(*) FROM documents d WHERE d.tenant = k.tenant AND d.kb = k.name),"
        " (SELECT count(*) FROM chunks c WHERE c.tenant = k.tenant AND c.kb = k.name)"
        " FROM knowledge_bases k WHERE k.tenant = ?"
    )
    params: tuple[str, ...] = (tenant,)
    if name is not None:
        sql += " AND k.name = ?"
        params = (tenant, name)
    return [
        KnowledgeBase(tenant, r[0], r[1], r[2], r[4], r[5], orjson.loads(r[3]))
        for r in db.execute(sql + " ORDER BY k.name", params)
    ]


def _delete_doc_rows(db: sqlite3.Connection, tenant: str, kb: str, doc_id: str) -> bool:
    db.execute(
        "DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks"
        " WHERE tenant = ? AND kb = ? AND doc_id = ?)",
        (tenant, kb, doc_id),
    )
    db.execute(
        "DELETE FROM chunks WHERE tenant = ? AND kb = ? AND doc_id = ?", (tenant, kb, doc_id)
    )
    cur = db.execute(
        "DELETE FROM documents WHERE tenant = ? AND kb = ? AND id = ?", (tenant, kb, doc_id)
    )
    return cur.rowcount > 0


def _bump(db: sqlite3.Connection, tenant: str, kb: str) -> int:
    row = db.execute(
        "UPDATE knowledge_bases SET version = version + 1 WHERE tenant = ?"
        " AND name = ? RETURNING version",
        (tenant, kb),
    ).fetchone()
    if row is None:
        raise LookupError(f"knowledge base {kb!r} does not exist")
    return int(row[0])


def _filter_sql(tenant: str, kb: str, filters: Filters | None) -> tuple[str, list[Any]]:
    """SQL appended to a query over ``chunks c``: the chunk's document must match."""
    checked = check_filters(filters)
    if not checked:
        return "", []
    conditions: list[str] = []
    params: list[Any] = []
    for key, values in checked:
        marks = ",".join("?" * len(values))
        if key in ("doc_id", "source"):
            column = "d.id" if key == "doc_id" else "d.source"
            conditions.append(f"{column} IN ({marks})")
        else:
            # The key was checked against a strict pattern before it reaches the JSON path.
            conditions.append(f"json_extract(d.metadata, '$.\"{key}\"') IN ({marks})")
        params.extend(_sql_value(v) for v in values)
    return (
        " AND c.doc_id IN (SELECT d.id FROM documents d WHERE d.tenant = ? AND d.kb = ?"
        " AND " + " AND ".join(conditions) + ")",
        [tenant, kb, *params],
    )


def _sql_value(value: Any) -> Any:
    # json_extract returns 1/0 for JSON booleans.
    return int(value) if isinstance(value, bool) else value
