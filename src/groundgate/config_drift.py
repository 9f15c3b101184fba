"""The ``[drift]`` section: rolling windows of what each app's and model's requests look like,
compared with a baseline (``groundgate.observe.drift``). Kept beside ``config.py``, which
imports it, as ``config_cache.py`` is.

Each signal of each target fills a window of ``window_requests`` samples (or fewer, once
``window_s`` has passed with at least ``min_samples``). The first ``baseline_windows`` windows
make the baseline; every window after that is compared with it, and the distance is exported
with the signal's bound (``bounds``), which the alert rule compares it to.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# What can drift, by the name the metrics' ``signal`` label carries.
Signal = Literal["embedding", "retrieval_score", "abstention", "groundedness", "feedback"]
SIGNALS: tuple[Signal, ...] = (
    "embedding",
    "retrieval_score",
    "abstention",
    "groundedness",
    "feedback",
)


class DriftBounds(BaseModel):
    """How far each signal's current window may move from its baseline before the alert fires.
    Distances: cosine distance between the question-embedding centroids (0 same direction,
    1 orthogonal); for the others, the absolute difference of the window means (a rate for
    abstention; the score's own scale for the rest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Measured with the semantic cache's embedder (bench/drift.py, README "Drift"): windows of
    # 500 Quora questions stay within 0.003 of a baseline of the same mix (200: 0.02; 100:
    # 0.04); one fifth of them from another domain moves a window of 500 by 0.06, a third by
    # 0.13-0.15, all of them by 0.6-0.9.
    embedding: float = Field(0.05, gt=0, le=2)
    retrieval_score: float = Field(0.1, gt=0)
    abstention: float = Field(0.1, gt=0, le=1)
    groundedness: float = Field(0.1, gt=0, le=1)
    feedback: float = Field(0.2, gt=0)

    def of(self, signal: Signal) -> float:
        bound: float = getattr(self, signal)
        return bound


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Off: the monitor watches nothing and the record stage skips it (nothing is computed,
    # kept or exported).
    enabled: bool = True
    # The apps and models watched (None: every app and model the config declares). Metric
    # labels carry only these names.
    targets: list[str] | None = None
    # The signals watched.
    signals: list[Signal] = Field(default_factory=lambda: list(SIGNALS))
    # The embedder whose question vectors are compared (None: the first one a target's
    # requests carry). Vectors are never computed for drift: they are those the guards, the
    # router or the semantic cache computed for the request, so a target none of them embeds
    # for has no embedding signal.
    embedder: str | None = None
    # A window closes after this many samples ...
    window_requests: int = Field(500, ge=1)
    # ... or once this long has passed since it opened, if it has ``min_samples`` by then.
    window_s: float = Field(900.0, gt=0)
    min_samples: int = Field(50, ge=1)
    # The first windows of each signal (after start) pooled into its baseline.
    baseline_windows: int = Field(4, ge=1)
    # How far each later window moves the baseline towards itself (0: the baseline stays as
    # learned; 0.05: a lasting change is absorbed over some tens of windows, and the alert
    # resolves).
    baseline_decay: float = Field(0.0, ge=0, le=1)
    bounds: DriftBounds = DriftBounds()

    @model_validator(mode="after")
    def _windows(self) -> Self:
        if self.min_samples > self.window_requests:
            raise ValueError(
                f"drift.min_samples ({self.min_samples}) must not exceed drift.window_requests "
                f"({self.window_requests})"
            )
        return self
