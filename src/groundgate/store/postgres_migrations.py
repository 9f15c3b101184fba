"""Versioned PostgreSQL schema migrations. Append only: never edit a migration that has shipped.

Every replica runs :func:`migrate` when it opens the store. The whole run holds a
transaction-scoped advisory lock, so replicas starting together apply each migration once: the
first takes the lock and migrates, the others wait, then find ``schema_version`` up to date.
A migration and its ``schema_version`` row commit in the same transaction as the lock.

Schema notes (the SQLite schema in :mod:`migrations` is the reference):

- Identifiers (tenant, kb, ids, hashes) are ``COLLATE "C"``: byte order, as in SQLite, whatever
  the database's default collation, so listings and pagination agree across backends.
- Keyword search: ``chunks.tsv`` holds title (weight A), headings (B) and text (C), computed
  by the INSERT (chunks are only ever inserted and deleted, never updated), with a GIN index.
  The ``groundgate_english`` configuration is English with Snowball stemming but *without* a
  stopword list, like SQLite's porter tokenizer: the query side drops stopwords
  (:func:`keyword_terms`), and a query made only of stopwords still finds them.
- Dense search: ``chunks.embedding`` is an untyped ``vector``, so one table holds any
  dimension. HNSW needs a fixed dimension, so each dimension gets its own partial expression
  index, ``(embedding::vector(d)) vector_cosine_ops WHERE vector_dims(embedding) = d``,
  created the first time a vector of that dimension is written (see ``postgres_knowledge``).
- ``CREATE EXTENSION vector`` needs a superuser (pgvector is not a trusted extension); where
  the store's role is not one, an operator creates it once beforehand and this is a no-op.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

# pg_advisory_xact_lock keys: one for migrations, one (with the dimension) for HNSW indexes.
MIGRATION_LOCK = 0x67676D6967  # "ggmig"
HNSW_LOCK = 0x6767686E  # "gghn"

# The text search configuration and the OR-aggregate used by keyword search.
TS_CONFIG = "groundgate_english"

PG_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE traces (
            tenant TEXT COLLATE "C" NOT NULL,
            id TEXT COLLATE "C" NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            source TEXT,
            deployment TEXT,
            status TEXT NOT NULL,
            http_status INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            data JSONB NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX traces_by_time ON traces (tenant, created_at);
        """,
    ),
    (
        2,
        """
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TEXT SEARCH DICTIONARY groundgate_english_stem (
            TEMPLATE = snowball, LANGUAGE = english
        );
        CREATE TEXT SEARCH CONFIGURATION groundgate_english (COPY = pg_catalog.english);
        ALTER TEXT SEARCH CONFIGURATION groundgate_english
            ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
            WITH groundgate_english_stem;
        CREATE AGGREGATE groundgate_tsquery_or (tsquery) (SFUNC = tsquery_or, STYPE = tsquery);
        CREATE TABLE knowledge_bases (
            tenant TEXT COLLATE "C" NOT NULL,
            name TEXT COLLATE "C" NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            version BIGINT NOT NULL DEFAULT 0,
            settings JSONB NOT NULL DEFAULT '{}',
            PRIMARY KEY (tenant, name)
        );
        CREATE TABLE documents (
            tenant TEXT COLLATE "C" NOT NULL,
            kb TEXT COLLATE "C" NOT NULL,
            id TEXT COLLATE "C" NOT NULL,
            content_hash TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            title TEXT NOT NULL DEFAULT '',
            metadata JSONB NOT NULL DEFAULT '{}',
            chunk_count INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (tenant, kb, id),
            FOREIGN KEY (tenant, kb) REFERENCES knowledge_bases (tenant, name) ON DELETE CASCADE
        );
        CREATE TABLE chunks (
            tenant TEXT COLLATE "C" NOT NULL,
            kb TEXT COLLATE "C" NOT NULL,
            id TEXT COLLATE "C" NOT NULL,
            doc_id TEXT COLLATE "C" NOT NULL,
            position INTEGER NOT NULL,
            text TEXT NOT NULL,
            heading_path JSONB NOT NULL DEFAULT '[]',
            token_count INTEGER NOT NULL DEFAULT 0,
            embedding vector,
            tsv tsvector NOT NULL,
            PRIMARY KEY (tenant, kb, id),
            FOREIGN KEY (tenant, kb, doc_id) REFERENCES documents (tenant, kb, id)
                ON DELETE CASCADE
        );
        CREATE INDEX chunks_by_doc ON chunks (tenant, kb, doc_id);
        CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
        CREATE TABLE embedding_cache (
            model TEXT COLLATE "C" NOT NULL,
            content_hash TEXT COLLATE "C" NOT NULL,
            vector BYTEA NOT NULL,
            PRIMARY KEY (model, content_hash)
        );
        """,
    ),
]

# API keys and tenants (see the SQLite migration 3).
PG_MIGRATIONS.append(
    (
        3,
        """
        CREATE TABLE tenants (
            name TEXT COLLATE "C" PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            requests_per_minute BIGINT,
            tokens_per_minute BIGINT,
            concurrent BIGINT,
            daily_budget_usd DOUBLE PRECISION,
            monthly_budget_usd DOUBLE PRECISION
        );
        CREATE TABLE api_keys (
            id TEXT COLLATE "C" PRIMARY KEY,
            tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (name),
            name TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            scopes JSONB NOT NULL,
            models JSONB,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            revoked_at DOUBLE PRECISION,
            requests_per_minute BIGINT,
            tokens_per_minute BIGINT,
            concurrent BIGINT,
            daily_budget_usd DOUBLE PRECISION,
            monthly_budget_usd DOUBLE PRECISION,
            max_tokens BIGINT
        );
        CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
        """,
    )
)

# Usage per API key (GET /v1/usage) needs the key on the trace row.
PG_MIGRATIONS.append(
    (
        4,
        """
        ALTER TABLE traces ADD COLUMN key_id TEXT;
        CREATE INDEX traces_by_key ON traces (tenant, key_id, created_at);
        """,
    )
)

# Retention (see the SQLite migration 5). The indexes hold the whole pruning order, so both
# finding the cutoff and deleting a batch are index scans. The column defaults stay, so a
# replica still running the previous version can go on writing during a rolling upgrade.
PG_MIGRATIONS.append(
    (
        5,
        """
        CREATE INDEX traces_by_age ON traces (created_at, tenant, id);
        ALTER TABLE embedding_cache
            ADD COLUMN created_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM now()),
            ADD COLUMN kind TEXT NOT NULL DEFAULT 'document';
        CREATE INDEX embedding_cache_by_age
            ON embedding_cache (kind, created_at, model, content_hash);
        """,
    )
)

# The human review queue (see the SQLite migration 6).
PG_MIGRATIONS.append(
    (
        6,
        """
        CREATE TABLE reviews (
            tenant TEXT COLLATE "C" NOT NULL,
            id TEXT COLLATE "C" NOT NULL,
            target TEXT COLLATE "C" NOT NULL,
            trace_id TEXT NOT NULL,
            key_id TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            mode TEXT NOT NULL,
            reasons JSONB NOT NULL,
            messages JSONB NOT NULL,
            answer JSONB NOT NULL,
            guards JSONB NOT NULL,
            decided_at DOUBLE PRECISION,
            decided_by TEXT,
            corrected_answer TEXT,
            note TEXT,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX reviews_by_status ON reviews (tenant, status, created_at, id);
        CREATE INDEX reviews_by_time ON reviews (tenant, created_at, id);
        """,
    )
)

# Feedback on answers (see the SQLite migration 7).
PG_MIGRATIONS.append(
    (
        7,
        """
        CREATE TABLE feedback (
            tenant TEXT COLLATE "C" NOT NULL,
            trace_id TEXT COLLATE "C" NOT NULL,
            source TEXT COLLATE "C" NOT NULL,
            target TEXT COLLATE "C" NOT NULL,
            key_id TEXT,
            score DOUBLE PRECISION CHECK (score BETWEEN 0 AND 1),
            label TEXT,
            comment TEXT,
            corrected_answer TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (tenant, trace_id, source)
        );
        CREATE INDEX feedback_by_time ON feedback (tenant, created_at, trace_id, source);
        CREATE INDEX feedback_by_target
            ON feedback (tenant, target, created_at, trace_id, source);
        """,
    )
)

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


async def migrate(conn: AsyncConnection[Any]) -> int:
    """Apply every migration newer than the database's schema version; return the version.

    ``conn`` must be in autocommit mode (the transaction here is the only one)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(_VERSION_TABLE)
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        row = await cur.fetchone()
        current = int(row[0]) if row else 0
        # Sorted: migrations are appended by several modules and branches.
        for version, statements in sorted(PG_MIGRATIONS):
            if version <= current:
                continue
            # No parameters: sent with the simple query protocol, several statements at once.
            await conn.execute(statements)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            current = version
    return current


# Agent runs (see the SQLite migration 8).
PG_MIGRATIONS.append(
    (
        8,
        """
        CREATE TABLE agent_runs (
            tenant TEXT COLLATE "C" NOT NULL,
            id TEXT COLLATE "C" NOT NULL,
            app TEXT COLLATE "C" NOT NULL,
            key_id TEXT,
            trace_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            data JSONB NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX agent_runs_by_time ON agent_runs (tenant, created_at, id);
        CREATE INDEX agent_runs_by_status ON agent_runs (tenant, status, created_at, id);
        """,
    )
)


# Prompt labels, their audit and the versions used (see the SQLite migration 9).
PG_MIGRATIONS.append(
    (
        9,
        """
        CREATE TABLE prompt_labels (
            name TEXT COLLATE "C" NOT NULL,
            label TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            updated_by TEXT NOT NULL,
            PRIMARY KEY (name, label)
        );
        CREATE TABLE prompt_label_moves (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL,
            label TEXT COLLATE "C" NOT NULL,
            from_version INTEGER,
            to_version INTEGER NOT NULL,
            moved_at DOUBLE PRECISION NOT NULL,
            moved_by TEXT NOT NULL,
            tenant TEXT,
            key_id TEXT,
            note TEXT
        );
        CREATE INDEX prompt_label_moves_by_name ON prompt_label_moves (name, seq);
        CREATE TABLE prompt_versions_used (
            name TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            first_used_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (name, version)
        );
        """,
    )
)

# Evaluation runs (see the SQLite migration 10).
PG_MIGRATIONS.append(
    (
        10,
        """
        CREATE TABLE eval_runs (
            tenant TEXT COLLATE "C" NOT NULL,
            id TEXT COLLATE "C" NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            app TEXT COLLATE "C" NOT NULL,
            dataset TEXT COLLATE "C" NOT NULL,
            dataset_hash TEXT,
            config_digest TEXT,
            data JSONB NOT NULL,
            report JSONB NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX eval_runs_by_time ON eval_runs (tenant, created_at, id);
        CREATE INDEX eval_runs_by_app ON eval_runs (tenant, app, dataset, created_at, id);
        """,
    )
)

# Per-key tool permissions (see the SQLite migration 11).
PG_MIGRATIONS.append((11, "ALTER TABLE api_keys ADD COLUMN tools JSONB"))

# Per-tenant tool permissions (see the SQLite migration 12).
PG_MIGRATIONS.append((12, "ALTER TABLE tenants ADD COLUMN tools JSONB"))

# Retention of feedback, agent runs, reviews and evaluation runs, and the runs left in flight
# (see the SQLite migration 13).
PG_MIGRATIONS.append(
    (
        13,
        """
        CREATE INDEX feedback_by_age ON feedback (created_at, tenant, trace_id, source);
        CREATE INDEX agent_runs_by_age ON agent_runs (updated_at, tenant, id, status);
        CREATE INDEX agent_runs_in_flight ON agent_runs (status, updated_at, tenant, id);
        CREATE INDEX reviews_by_decision ON reviews (decided_at, tenant, id);
        CREATE INDEX eval_runs_by_age ON eval_runs (created_at, tenant, id);
        """,
    )
)
