"""The ``[retention]`` section: how long the store keeps what grows with traffic. Kept beside
``config.py``, which imports it, as ``config_cache.py`` is.

Three kinds of rows grow without bound unless pruned: traces (one per request), the embedding
cache's document vectors (one per distinct chunk text ever ingested) and its question vectors
(one per distinct question ever embedded, for retrieval or the semantic cache). Each gets an
age limit and a row cap; 0 turns either off.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetentionLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Rows older than this are deleted (0: no age limit).
    max_age_days: float = Field(ge=0)
    # At most this many rows are kept, the newest (0: no cap).
    max_rows: int = Field(ge=0)


# The defaults of each kind; a table in the file overrides only the keys it names.
_DEFAULT_LIMITS: dict[str, dict[str, Any]] = {
    # Traces: what /v1/traces and /v1/usage can still show. 45 days so a report on the last
    # whole calendar month is still complete well into the next one.
    "traces": {"max_age_days": 45, "max_rows": 1_000_000},
    # Chunk vectors cached so re-ingesting unchanged text costs no embedding (the knowledge
    # base keeps its own copy: pruning them only costs a re-embedding on the next ingest).
    "embeddings": {"max_age_days": 90, "max_rows": 500_000},
    # Question vectors cached so a repeated question is embedded once.
    "question_vectors": {"max_age_days": 7, "max_rows": 100_000},
}


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Prune in the background of every gateway process (``groundgate prune`` works either way).
    enabled: bool = True
    # Time between two pruning runs (the first comes one interval after start).
    interval_s: float = Field(300.0, gt=0)
    # Rows deleted per transaction: each batch holds the write lock only briefly.
    batch_size: int = Field(1000, ge=1, le=100_000)
    traces: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["traces"])
    embeddings: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["embeddings"])
    question_vectors: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["question_vectors"])

    @model_validator(mode="before")
    @classmethod
    def _partial_tables(cls, data: Any) -> Any:
        """``[retention.traces]`` with only ``max_rows`` keeps the default age, and so on."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for kind, defaults in _DEFAULT_LIMITS.items():
            given = data.get(kind)
            if isinstance(given, dict):
                data[kind] = {**defaults, **given}
        return data
