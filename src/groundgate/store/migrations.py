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
