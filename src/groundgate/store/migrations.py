"""Versioned schema migrations. Append only: never edit a migration that has shipped."""

from __future__ import annotations

# (version, SQL). Applied in order inside one transaction each; the version is kept in
# SQLite's PRAGMA user_version.
SQLITE_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE traces (
            id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            created_at REAL NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            source TEXT,
            deployment TEXT,
            status TEXT NOT NULL,
            http_status INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            latency_ms REAL NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;
        CREATE INDEX traces_by_time ON traces (tenant, created_at);
        """,
    ),
]

SQLITE_MIGRATIONS.append(
    (
        2,
        """
        CREATE TABLE knowledge_bases (
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            scope TEXT NOT NULL,
            created_at REAL NOT NULL,
            version INTEGER NOT NULL DEFAULT 0,
            settings TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (tenant, name)
        );
        CREATE TABLE documents (
            tenant TEXT NOT NULL,
            kb TEXT NOT NULL,
            id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            title TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}',
            chunk_count INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tenant, kb, id),
            FOREIGN KEY (tenant, kb) REFERENCES knowledge_bases (tenant, name) ON DELETE CASCADE
        );
        CREATE TABLE chunks (
            rowid INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            kb TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            id TEXT NOT NULL,
            position INTEGER NOT NULL,
            text TEXT NOT NULL,
            heading_path TEXT NOT NULL DEFAULT '[]',
            token_count INTEGER NOT NULL DEFAULT 0,
            embedding BLOB,
            UNIQUE (tenant, kb, id),
            FOREIGN KEY (tenant, kb, doc_id) REFERENCES documents (tenant, kb, id)
                ON DELETE CASCADE
        );
        CREATE INDEX chunks_by_doc ON chunks (tenant, kb, doc_id);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            scope, title, headings, text,
            tokenize = 'porter unicode61 remove_diacritics 2'
        );
        CREATE TABLE embedding_cache (
            model TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (model, content_hash)
        ) WITHOUT ROWID
        """,
    )
)

# API keys and tenants. Keys are never deleted, only revoked; a key's tenant must exist (the
# store creates it with the key), and a tenant cannot go while a key still points at it.
SQLITE_MIGRATIONS.append(
    (
        3,
        """
        CREATE TABLE tenants (
            name TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            requests_per_minute INTEGER,
            tokens_per_minute INTEGER,
            concurrent INTEGER,
            daily_budget_usd REAL,
            monthly_budget_usd REAL
        ) WITHOUT ROWID;
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL REFERENCES tenants (name),
            name TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            models TEXT,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            requests_per_minute INTEGER,
            tokens_per_minute INTEGER,
            concurrent INTEGER,
            daily_budget_usd REAL,
            monthly_budget_usd REAL,
            max_tokens INTEGER
        ) WITHOUT ROWID;
        CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at)
        """,
    )
)

# Usage per API key (GET /v1/usage) needs the key on the trace row.
SQLITE_MIGRATIONS.append(
    (
        4,
        """
        ALTER TABLE traces ADD COLUMN key_id TEXT;
        CREATE INDEX traces_by_key ON traces (tenant, key_id, created_at)
        """,
    )
)

# Retention (store/retention.py): rows are pruned oldest first, so traces need an index by age
# alone (across tenants), and the embedding cache needs to know when a vector was saved and
# whether it is a document's or a question's (kept for different times). Vectors saved before
# this migration count as saved now, and as a document's: they age out from today.
SQLITE_MIGRATIONS.append(
    (
        5,
        """
        CREATE INDEX traces_by_age ON traces (created_at);
        ALTER TABLE embedding_cache ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
        ALTER TABLE embedding_cache ADD COLUMN kind TEXT NOT NULL DEFAULT 'document';
        UPDATE embedding_cache SET created_at = (julianday('now') - 2440587.5) * 86400.0;
        CREATE INDEX embedding_cache_by_age ON embedding_cache (kind, created_at)
        """,
    )
)

# The human review queue (store/reviews.py). Listed per tenant by status, newest first (the
# index holds the whole order, ``id`` breaking ties), or by time alone; rows are large (the
# request and the answer), so the table keeps its rowid.
SQLITE_MIGRATIONS.append(
    (
        6,
        """
        CREATE TABLE reviews (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            target TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            key_id TEXT,
            created_at REAL NOT NULL,
            status TEXT NOT NULL,
            mode TEXT NOT NULL,
            reasons TEXT NOT NULL,
            messages TEXT NOT NULL,
            answer TEXT NOT NULL,
            guards TEXT NOT NULL,
            decided_at REAL,
            decided_by TEXT,
            corrected_answer TEXT,
            note TEXT,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX reviews_by_status ON reviews (tenant, status, created_at, id);
        CREATE INDEX reviews_by_time ON reviews (tenant, created_at, id)
        """,
    )
)

# Feedback on answers (store/feedback.py): one row per (tenant, trace, source), listed per
# tenant oldest first, all of it or one app's or model's (the indexes hold the whole order).
SQLITE_MIGRATIONS.append(
    (
        7,
        """
        CREATE TABLE feedback (
            tenant TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            source TEXT NOT NULL,
            target TEXT NOT NULL,
            key_id TEXT,
            score REAL CHECK (score BETWEEN 0 AND 1),
            label TEXT,
            comment TEXT,
            corrected_answer TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tenant, trace_id, source)
        );
        CREATE INDEX feedback_by_time ON feedback (tenant, created_at, trace_id, source);
        CREATE INDEX feedback_by_target ON feedback (tenant, target, created_at, trace_id, source)
        """,
    )
)

# Agent runs (store/runs.py): listed per tenant newest first, all or by status (pending
# approvals) or app.
SQLITE_MIGRATIONS.append(
    (
        8,
        """
        CREATE TABLE agent_runs (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            app TEXT NOT NULL,
            key_id TEXT,
            trace_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            status TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX agent_runs_by_time ON agent_runs (tenant, created_at, id);
        CREATE INDEX agent_runs_by_status ON agent_runs (tenant, status, created_at, id)
        """,
    )
)

# Prompt labels (store/prompts.py): gateway-wide, each move audited (the audit is read per
# prompt, newest first), and the digest of every version the first time it was used.
SQLITE_MIGRATIONS.append(
    (
        9,
        """
        CREATE TABLE prompt_labels (
            name TEXT NOT NULL,
            label TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            updated_by TEXT NOT NULL,
            PRIMARY KEY (name, label)
        );
        CREATE TABLE prompt_label_moves (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            label TEXT NOT NULL,
            from_version INTEGER,
            to_version INTEGER NOT NULL,
            moved_at REAL NOT NULL,
            moved_by TEXT NOT NULL,
            tenant TEXT,
            key_id TEXT,
            note TEXT
        );
        CREATE INDEX prompt_label_moves_by_name ON prompt_label_moves (name, seq);
        CREATE TABLE prompt_versions_used (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            first_used_at REAL NOT NULL,
            PRIMARY KEY (name, version)
        )
        """,
    )
)

# Evaluation runs (store/eval_runs.py): listed per tenant newest first, all or by app and
# dataset (``groundgate eval history``, the gateway's eval gauges).
SQLITE_MIGRATIONS.append(
    (
        10,
        """
        CREATE TABLE eval_runs (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at REAL NOT NULL,
            app TEXT NOT NULL,
            dataset TEXT NOT NULL,
            dataset_hash TEXT,
            config_digest TEXT,
            data TEXT NOT NULL,
            report TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        CREATE INDEX eval_runs_by_time ON eval_runs (tenant, created_at, id);
        CREATE INDEX eval_runs_by_app ON eval_runs (tenant, app, dataset, created_at, id)
        """,
    )
)

# Per-key tool permissions (gateway/principal.py Principal.tools): a JSON list of tool names
# (or "mcp:SERVER"); NULL: every tool the app offers.
SQLITE_MIGRATIONS.append((11, "ALTER TABLE api_keys ADD COLUMN tools TEXT"))

# Per-tenant tool permissions (Principal.tenant_tools, intersected with the key's): a JSON list
# of tool names (or "mcp:SERVER"); NULL: every tool.
SQLITE_MIGRATIONS.append((12, "ALTER TABLE tenants ADD COLUMN tools TEXT"))

# Retention of feedback, finished agent runs, decided reviews and evaluation runs
# (store/retention.py): each index holds the whole pruning order (the time rows age by, then
# the primary key), as migration 5's do, so finding the cutoff and deleting a batch are index
# scans across tenants (``agent_runs_by_age`` also holds the status that keeps unfinished
# runs out, so it covers the scan without reading the large rows). ``agent_runs_in_flight``
# finds the runs a stopped gateway left ``running`` (agents/reaper.py) without reading the
# finished ones.
SQLITE_MIGRATIONS.append(
    (
        13,
        """
        CREATE INDEX feedback_by_age ON feedback (created_at, tenant, trace_id, source);
        CREATE INDEX agent_runs_by_age ON agent_runs (updated_at, tenant, id, status);
        CREATE INDEX agent_runs_in_flight ON agent_runs (status, updated_at, tenant, id);
        CREATE INDEX reviews_by_decision ON reviews (decided_at, tenant, id);
        CREATE INDEX eval_runs_by_age ON eval_runs (created_at, tenant, id)
        """,
    )
)
