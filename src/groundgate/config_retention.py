"""The ``[retention]`` section: how long the store keeps what grows with traffic. Kept beside
``config.py``, which imports it, as ``config_cache.py`` is.

Three kinds of rows grow without bound unless pruned: traces (one per request), the embedding
cache's document vectors (one per distinct chunk text ever ingested) and its question vectors
(one per distinct question ever embedded, for retrieval or the semantic cache). Each gets an
age limit and a row cap; 0 turns either off.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetentionLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Rows older than this are deleted (0: no age limit).
    max_age_days: float = Field(ge=0)
    # At most this many rows are kept, the newest (0: no cap).
    max_rows: int = Field(ge=0)


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Prune in the background of every gateway process (``groundgate prune`` works either way).
    enabled: bool = True
    # Time between two pruning runs (the first comes one interval after start).
    interval_s: float = Field(300.0, gt=0)
    # Rows deleted per transaction: each batch holds the write lock only briefly.
    batch_size: int = Field(1000, ge=1, le=100_000)
    # Traces: what /v1/traces and /v1/usage can still show. Usage older than this is gone.
    traces: RetentionLimit = RetentionLimit(max_age_days=30, max_rows=1_000_000)
    # Chunk vectors cached so re-ingesting unchanged text costs no embedding (the knowledge
    # base keeps its own copy: pruning them only costs a re-embedding on the next ingest).
    embeddings: RetentionLimit = RetentionLimit(max_age_days=90, max_rows=500_000)
    # Question vectors cached so a repeated question is embedded once.
    question_vectors: RetentionLimit = RetentionLimit(max_age_days=7, max_rows=100_000)
