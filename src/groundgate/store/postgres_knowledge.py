"""Knowledge bases on PostgreSQL: full-text search for keywords, pgvector HNSW for vectors.

Semantics mirror :mod:`sqlite_knowledge` (the conformance suite holds both to them): every
query is scoped by tenant and kb; every change bumps the kb version in its own transaction,
and that bump comes first, so a write to a missing kb fails with ``LookupError`` before it
touches anything, and writers of one kb queue on its row lock (in one lock order: kb row, then
document rows, so replace and delete never deadlock).

Keyword ranking is ``ts_rank_cd`` (cover density) over a weighted tsvector: title 1.0,
headings 0.6, text 1.0, the same column weights SQLite gives bm25(). It is *not* BM25: it has
no inverse document frequency, and length normalisation is ``1 + log(length)``. Hybrid
retrieval fuses ranks (RRF), so only the order within one backend matters.

Dense search orders by cosine distance through the HNSW index of the query's dimension (see
:mod:`postgres_migrations`), with ``hnsw.iterative_scan = strict_order`` (set per connection)
so tenant, kb and metadata filters never starve the result; the score is ``1 - distance``.
Chunks whose vectors have another dimension (e.g. written by a previous embedder) are not
candidates. Vectors above pgvector's HNSW limit (2,000 dimensions) are searched exactly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import numpy as np
import orjson
from psycopg import AsyncConnection, Rollback, sql

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
from groundgate.store.postgres_migrations import HNSW_LOCK, TS_CONFIG
from groundgate.store.retention import embedding_kind

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]

# ts_rank_cd weights, in the order {D, C, B, A}: text is C, headings B, title A.
_RANK_WEIGHTS = [0.0, 1.0, 0.6, 1.0]
_RANK_NORMALISATION = 1  # divide by 1 + log(document length)
HNSW_MAX_DIM = 2000

_DOC_COLUMNS = "id, content_hash, source, title, metadata, chunk_count, created_at, updated_at"

_KEYWORD_SQL = f"""
SELECT c.id, ts_rank_cd(%s::float4[], c.tsv, q.query, {_RANK_NORMALISATION}) AS score
FROM chunks c,
     (SELECT groundgate_tsquery_or(plainto_tsquery('{TS_CONFIG}', t)) AS query
      FROM unnest(%s::text[]) AS t) AS q
WHERE c.tenant = %s AND c.kb = %s AND c.tsv @@ q.query"""

_INSERT_CHUNK = f"""
INSERT INTO chunks (tenant, kb, id, doc_id, position, text, heading_path, token_count,
                    embedding, tsv)
VALUES (%(tenant)s, %(kb)s, %(id)s, %(doc_id)s, %(position)s, %(text)s, %(heading_path)s::jsonb,
        %(token_count)s, %(embedding)s,
        setweight(to_tsvector('{TS_CONFIG}', %(title)s), 'A')
        || setweight(to_tsvector('{TS_CONFIG}', %(headings)s), 'B')
        || setweight(to_tsvector('{TS_CONFIG}', %(text)s), 'C'))"""

_UPSERT_DOC = """
INSERT INTO documents (tenant, kb, id, content_hash, source, title, metadata, chunk_count,
                       created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)
ON CONFLICT (tenant, kb, id) DO UPDATE SET content_hash = excluded.content_hash,
    source = excluded.source, title = excluded.title, metadata = excluded.metadata,
    chunk_count = excluded.chunk_count, updated_at = excluded.updated_at"""


class PostgresKnowledge:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._indexed_dims: set[int] = set()

    # -- knowledge bases -----------------------------------------------------------------

    async def ensure_kb(
        self, tenant: str, name: str, settings: dict[str, Any] | None = None
    ) -> KnowledgeBase:
        async with self._connect() as conn:
            await conn.execute(
                "INSERT INTO knowledge_bases (tenant, name, created_at, settings)"
                " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT (tenant, name) DO NOTHING",
                (pg_text(tenant), pg_text(name), time.time(), pg_json(settings or {})),
            )
        kb = await self.get_kb(tenant, name)
        assert kb is not None
        return kb

    async def get_kb(self, tenant: str, name: str) -> KnowledgeBase | None:
        rows = await self._kb_rows(tenant, name)
        return rows[0] if rows else None

    async def list_kbs(self, tenant: str) -> list[KnowledgeBase]:
        return await self._kb_rows(tenant, None)

    async def kb_version(self, tenant: str, name: str) -> str | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT created_at, version FROM knowledge_bases WHERE tenant = %s AND name = %s",
                (pg_text(tenant), pg_text(name)),
            )
            row = await cur.fetchone()
        return None if row is None else f"{row[0]!r}:{row[1]}"

    async def _kb_rows(self, tenant: str, name: str | None) -> list[KnowledgeBase]:
        query = (
            "SELECT k.name, k.created_at, k.version, k.settings,"
            " (SELECT count(*) FROM documents d WHERE d.tenant = k.tenant AND d.kb = k.name),"
            " (SELECT count(*) FROM chunks c WHERE c.tenant = k.tenant AND c.kb = k.name)"
            " FROM knowledge_bases k WHERE k.tenant = %s"
        )
        params: tuple[str, ...] = (pg_text(tenant),)
        if name is not None:
            query += " AND k.name = %s"
            params = (pg_text(tenant), pg_text(name))
        async with self._connect() as conn:
            cur = await conn.execute(query + " ORDER BY k.name", params)
            rows = await cur.fetchall()
        return [KnowledgeBase(tenant, r[0], r[1], r[2], r[4], r[5], r[3]) for r in rows]

    async def delete_kb(self, tenant: str, name: str) -> bool:
        # Documents and chunks go with it (ON DELETE CASCADE), in the same statement.
        async with self._connect() as conn:
            cur = await conn.execute(
                "DELETE FROM knowledge_bases WHERE tenant = %s AND name = %s",
                (pg_text(tenant), pg_text(name)),
            )
            return cur.rowcount > 0

    # -- documents -----------------------------------------------------------------------

    async def get_document(self, tenant: str, kb: str, doc_id: str) -> DocumentRecord | None:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE tenant = %s AND kb = %s AND id = %s",
                (pg_text(tenant), pg_text(kb), pg_text(doc_id)),
            )
            row = await cur.fetchone()
        return _doc(row) if row else None

    async def list_documents(
        self, tenant: str, kb: str, *, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        async with self._connect() as conn:
            cur = await conn.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE tenant = %s AND kb = %s"
                " ORDER BY id LIMIT %s OFFSET %s",
                (pg_text(tenant), pg_text(kb), max(limit, 0), max(offset, 0)),
            )
            rows = await cur.fetchall()
        return [_doc(r) for r in rows]

    async def document_hashes(self, tenant: str, kb: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT id, content_hash FROM documents WHERE tenant = %s AND kb = %s"
                " AND id = ANY(%s::text[])",
                (pg_text(tenant), pg_text(kb), [pg_text(i) for i in ids]),
            )
            rows = await cur.fetchall()
        return {doc_id: digest for doc_id, digest in rows}

    async def replace_document(
        self, tenant: str, kb: str, doc: DocumentRecord, chunks: list[ChunkRecord]
    ) -> int:
        now = time.time()
        tenant, kb, doc_id = pg_text(tenant), pg_text(kb), pg_text(doc.id)
        title = pg_text(doc.title)
        vectors = [_vector(c.embedding) for c in chunks]
        chunk_rows = [
            {
                "tenant": tenant,
                "kb": kb,
                "id": pg_text(c.id),
                "doc_id": doc_id,
                "position": c.position,
                "text": pg_text(c.text),
                "heading_path": pg_json(c.heading_path),
                "token_count": c.token_count,
                "embedding": vector,
                "title": title,
                "headings": pg_text(" / ".join(c.heading_path)),
            }
            for c, vector in zip(chunks, vectors, strict=True)
        ]
        dims = {int(v.shape[0]) for v in vectors if v is not None and v.shape[0]}
        for dim in dims - self._indexed_dims:
            await self._ensure_dense_index(dim)
        async with self._connect() as conn, conn.transaction():
            version = await _bump(conn, tenant, kb)  # first: fails cleanly if no such kb
            assert version is not None
            await conn.execute(
                "DELETE FROM chunks WHERE tenant = %s AND kb = %s AND doc_id = %s",
                (tenant, kb, doc_id),
            )
            await conn.execute(
                _UPSERT_DOC,
                (
                    tenant,
                    kb,
                    doc_id,
                    pg_text(doc.content_hash),
                    pg_text(doc.source),
                    title,
                    pg_json(doc.metadata),
                    len(chunks),
                    now,
                    now,
                ),
            )
            if chunk_rows:
                async with conn.cursor() as cur:
                    await cur.executemany(_INSERT_CHUNK, chunk_rows)
        return version

    async def delete_document(self, tenant: str, kb: str, doc_id: str) -> bool:
        deleted = False
        async with self._connect() as conn, conn.transaction():
            # The kb row first, as replace_document does: one lock order, no deadlock.
            if await _bump(conn, tenant, kb, missing_ok=True) is None:
                return False
            cur = await conn.execute(
                "DELETE FROM documents WHERE tenant = %s AND kb = %s AND id = %s",
                (pg_text(tenant), pg_text(kb), pg_text(doc_id)),
            )
            deleted = cur.rowcount > 0
            if not deleted:
                raise Rollback()  # nothing changed: the version stays where it was
        return deleted

    async def _ensure_dense_index(self, dim: int) -> None:
        """Create the HNSW index for vectors of ``dim`` dimensions unless it exists.

        Checked without locks first; created under an advisory lock (so replicas do not race
        on the name) in its own transaction, before the write that needs it. Building takes a
        SHARE lock on ``chunks`` (writes wait), once per dimension, on a table that holds no
        vector of that dimension yet, so it is quick."""
        if dim > HNSW_MAX_DIM:
            self._indexed_dims.add(dim)
            return
        name = f"chunks_embedding_hnsw_{dim}"
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = 'chunks'::regclass AND c.relname = %s)",
                (name,),
            )
            row = await cur.fetchone()
            if not (row and row[0]):
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (HNSW_LOCK, dim))
                    await conn.execute(
                        sql.SQL(
                            "CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw"
                            " ((embedding::vector({dim})) vector_cosine_ops)"
                            " WHERE vector_dims(embedding) = {dim}"
                        ).format(name=sql.Identifier(name), dim=sql.Literal(dim))
                    )
        self._indexed_dims.add(dim)

    # -- search --------------------------------------------------------------------------

    async def keyword_search(
        self, tenant: str, kb: str, query: str, *, limit: int, filters: Filters | None = None
    ) -> list[Hit]:
        where, filter_params = _filter_sql(tenant, kb, filters)
        terms = keyword_terms(query)
        if not terms or limit <= 0:
            return []
        params = [
            _RANK_WEIGHTS,
            [pg_text(t) for t in terms],
            pg_text(tenant),
            pg_text(kb),
            *filter_params,
            limit,
        ]
        async with self._connect() as conn:
            cur = await conn.execute(keyword_sql(where), params)
            rows = await cur.fetchall()
        return [Hit(chunk_id, float(score)) for chunk_id, score in rows]

    async def dense_search(
        self, tenant: str, kb: str, vector: Vector, *, limit: int, filters: Filters | None = None
    ) -> list[Hit]:
        where, filter_params = _filter_sql(tenant, kb, filters)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        dim = int(query.shape[0])
        if dim == 0 or limit <= 0:
            return []
        params = [query, pg_text(tenant), pg_text(kb), *filter_params, limit]
        async with self._connect() as conn:
            cur = await conn.execute(dense_sql(dim, where), params)
            rows = await cur.fetchall()
        return [Hit(chunk_id, 1.0 - float(distance)) for chunk_id, distance in rows]

    async def get_chunks(self, tenant: str, kb: str, ids: list[str]) -> list[StoredChunk]:
        if not ids:
            return []
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.doc_id, c.position, c.text, d.title, d.source, c.heading_path,"
                " d.metadata, c.token_count FROM chunks c JOIN documents d"
                " ON d.tenant = c.tenant AND d.kb = c.kb AND d.id = c.doc_id"
                " WHERE c.tenant = %s AND c.kb = %s AND c.id = ANY(%s::text[])",
                (pg_text(tenant), pg_text(kb), [pg_text(i) for i in ids]),
            )
            rows = await cur.fetchall()
        found = {r[0]: StoredChunk(*r) for r in rows}
        return [found[i] for i in map(pg_text, ids) if i in found]

    # -- embedding cache -----------------------------------------------------------------

    async def get_embeddings(self, model: str, hashes: list[str]) -> dict[str, Vector]:
        if not hashes:
            return {}
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT content_hash, vector FROM embedding_cache WHERE model = %s"
                " AND content_hash = ANY(%s::text[])",
                (pg_text(model), [pg_text(h) for h in hashes]),
            )
            rows = await cur.fetchall()
        return {digest: np.frombuffer(blob, dtype=np.float32) for digest, blob in rows}

    async def put_embeddings(
        self, model: str, vectors: dict[str, Vector], *, questions: bool = False
    ) -> None:
        if not vectors:
            return
        now, kind = time.time(), embedding_kind(questions=questions)
        rows = [
            (pg_text(model), pg_text(h), np.asarray(v, dtype=np.float32).tobytes(), now, kind)
            for h, v in vectors.items()
        ]
        # First write wins: the same content under the same model has the same vector.
        async with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO embedding_cache (model, content_hash, vector, created_at, kind)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (model, content_hash) DO NOTHING",
                rows,
            )


# -- what PostgreSQL can store --------------------------------------------------------------

# A JSON "\u0000" escape that is not itself escaped (an odd run of backslashes before "u0000").
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def pg_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: store U+FFFD instead (reads map their keys the same
    way, so a lookup by the original string still finds the row)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def pg_json(value: Any) -> str:
    """JSON text for a jsonb parameter; jsonb cannot hold "\\u0000" either."""
    return pg_json_text(orjson.dumps(value))


def pg_json_text(data: bytes) -> str:
    text = data.decode()
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def keyword_sql(where: sql.Composable) -> sql.Composed:
    """Parameters: weights, terms, tenant, kb, the filter's, limit."""
    return sql.SQL(_KEYWORD_SQL) + where + sql.SQL(" ORDER BY score DESC, c.id LIMIT %s")


def dense_sql(dim: int, where: sql.Composable) -> sql.Composed:
    """Parameters: vector, tenant, kb, the filter's, limit.

    The dimension is a literal, not a parameter: the planner matches the partial HNSW index
    by its expression and predicate, which a generic plan's parameter would hide. Ordering by
    the distance alone (no tie-break) is what lets the index produce the order."""
    d = sql.Literal(int(dim))
    return (
        sql.SQL(
            "SELECT c.id, c.embedding::vector({d}) <=> %s::vector({d}) AS distance"
            " FROM chunks c WHERE c.tenant = %s AND c.kb = %s"
            " AND vector_dims(c.embedding) = {d}"
        ).format(d=d)
        + where
        + sql.SQL(" ORDER BY distance LIMIT %s")
    )


def _vector(embedding: Vector | None) -> Vector | None:
    if embedding is None:
        return None
    return np.asarray(embedding, dtype=np.float32).reshape(-1)


def _doc(r: Any) -> DocumentRecord:
    return DocumentRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])


async def _bump(
    conn: AsyncConnection[Any], tenant: str, kb: str, *, missing_ok: bool = False
) -> int | None:
    cur = await conn.execute(
        "UPDATE knowledge_bases SET version = version + 1 WHERE tenant = %s AND name = %s"
        " RETURNING version",
        (pg_text(tenant), pg_text(kb)),
    )
    row = await cur.fetchone()
    if row is None:
        if missing_ok:
            return None
        raise LookupError(f"knowledge base {kb!r} does not exist")
    return int(row[0])


def _filter_sql(tenant: str, kb: str, filters: Filters | None) -> tuple[sql.Composable, list[Any]]:
    """SQL appended to a query over ``chunks c``: the chunk's document must match.

    Validates first (so bad filters fail even when the query would find nothing). Keys and
    values are parameters; metadata values compare as jsonb (typed: true is not 1)."""
    checked = check_filters(filters)
    if not checked:
        return sql.SQL(""), []
    conditions: list[sql.Composable] = []
    params: list[Any] = [pg_text(tenant), pg_text(kb)]
    for key, values in checked:
        if key in ("doc_id", "source"):
            column = "d.id" if key == "doc_id" else "d.source"
            conditions.append(sql.SQL(f"{column} = ANY(%s::text[])"))
            # As SQLite's TEXT affinity does: 5 matches "5", True matches "1".
            params.append([pg_text(str(int(v) if isinstance(v, bool) else v)) for v in values])
        else:
            conditions.append(sql.SQL("d.metadata -> %s::text = ANY(%s::jsonb[])"))
            params.extend([key, [pg_json(v) for v in values]])
    return (
        sql.SQL(
            " AND c.doc_id IN (SELECT d.id FROM documents d WHERE d.tenant = %s AND d.kb = %s AND "
        )
        + sql.SQL(" AND ").join(conditions)
        + sql.SQL(")"),
        params,
    )
