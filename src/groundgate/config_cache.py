"""The cache's configuration: the ``[cache]`` section and the ``cache`` table of each app and
model. Kept beside ``config.py``, which imports it, so that module stays one screenful per
concern."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Chosen by measurement: see groundgate.cache.semantic.DEFAULT_THRESHOLD (kept equal by a test).
DEFAULT_SEMANTIC_THRESHOLD = 0.985


class CachePolicy(BaseModel):
    """How one app or model uses the response cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Serve identical requests (same tenant, target, prompt version, knowledge-base version,
    # parameters and normalised messages) from the cache.
    exact: bool = False
    # Also serve a cached answer to a question similar enough (single-turn requests only).
    semantic: bool = False
    # Cosine similarity a semantic hit needs. Lower buys hit rate with wrong answers:
    # on Quora question pairs 0.985 gives precision 0.96 (recall 3%), 0.95 gives 0.91 (17%),
    # with the default (int8) embedder; measure again for another embedder.
    threshold: float = Field(DEFAULT_SEMANTIC_THRESHOLD, ge=0.5, le=1.0)
    # How long an answer stays servable.
    ttl_s: float = Field(3600.0, gt=0, le=30 * 86400)
    # Cache requests sampled with temperature > 0 (whose answers vary by design).
    cache_sampled: bool = False


# Grounded apps cache by default (their answers are deterministic for a knowledge-base version
# and their questions repeat); plain models only when their config opts in.
APP_CACHE_DEFAULT = CachePolicy(exact=True, semantic=True)
MODEL_CACHE_DEFAULT = CachePolicy()


class CacheConfig(BaseModel):
    """Where cached answers live, and how much room they get."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    # The environment variable holding the Redis URL (it may contain a password).
    redis_url_env: str = "GROUNDGATE_REDIS_URL"
    # Bounds of the in-process cache (and of each replica's semantic-index mirror with Redis).
    max_entries: int = Field(100_000, ge=1)
    max_mb: float = Field(512.0, gt=0)
    # The embedder that turns questions into vectors for the semantic cache.
    embedder: str = "all-minilm-l6-v2-int8"
