"""The eval cache (:class:`groundgate.evals.scoring.EvalCache`) on a local SQLite file: answers
(and anything else a scorer paid for) by a key that names everything they depend on, so a
re-run of unchanged cases makes no upstream call and any change to what matters misses.

The default file is ``.groundgate/eval-cache.sqlite`` under the working directory. Values are
JSON. Lookups are tiny local reads and run on the caller's thread; the cache belongs to one
``groundgate eval`` process (SQLite's locking keeps two of them safe, not fast).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from groundgate.evals.dataset import EvalCase
from groundgate.evals.fingerprint import digest

DEFAULT_PATH = Path(".groundgate") / "eval-cache.sqlite"
# Bumped when what a cached answer holds changes shape: old entries then simply miss.
KEY_VERSION = 1


def answer_key(case: EvalCase, scope: str) -> str:
    """The key of a case's answer: what the system is asked (question, history, filters; not
    the expected answers, which only scoring reads) and the answerer's scope (its config
    digest, prompt and model versions, knowledge-base version)."""
    asked = {
        "v": KEY_VERSION,
        "kind": "answer",
        "question": case.question,
        "history": [turn.model_dump() for turn in case.history],
        "filters": case.filters,
        "scope": scope,
    }
    return digest(asked)


class SQLiteEvalCache:
    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS eval_cache"
            " (key TEXT PRIMARY KEY, value BLOB NOT NULL, created_at REAL NOT NULL)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM eval_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = orjson.loads(row[0])
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        data = orjson.dumps(value)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO eval_cache (key, value, created_at) VALUES (?, ?, ?)",
                (key, data, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM eval_cache").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
