"""The ``[retention]`` section: how long the store keeps what grows with traffic. Kept beside
``config.py``, which imports it, as ``config_cache.py`` is.

These rows grow without bound unless pruned: traces (one per request), the embedding cache's
document vectors (one per distinct chunk text ever ingested) and its question vectors (one per
distinct question ever embedded, for retrieval or the semantic cache), feedback, finished agent
runs, decided reviews and evaluation runs. Each kind gets an age limit and a row cap; 0 turns
either off. Prompt label moves are an audit trail, small and kept for good: never pruned.
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
    # Feedback lives as long as the traces it is about: past them it has lost the question
    # and answer its exports read (``feedback.keep_text``).
    "feedback": {"max_age_days": 45, "max_rows": 1_000_000},
    # Finished agent runs (by the time they ended): whole conversations and tool results,
    # i.e. user data, kept long enough to look into a run from its trace. Runs still running
    # or waiting for approval are never pruned.
    "agent_runs": {"max_age_days": 30, "max_rows": 100_000},
    # Decided reviews (by the time of the decision): the record of who decided what. A
    # reviewer's correction is also feedback, kept on its own terms. Pending ones stay.
    "reviews": {"max_age_days": 90, "max_rows": 100_000},
    # Evaluation runs: small, one per ``groundgate eval``, read for trends over releases.
    "eval_runs": {"max_age_days": 365, "max_rows": 10_000},
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
    feedback: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["feedback"])
    agent_runs: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["agent_runs"])
    reviews: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["reviews"])
    eval_runs: RetentionLimit = RetentionLimit(**_DEFAULT_LIMITS["eval_runs"])

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
