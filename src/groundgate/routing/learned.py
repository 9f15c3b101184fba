"""The learned router: the probability that the cheapest tier answers a request correctly,
from the request's embedding and a few cheap features of its text (``features.py``).

The embedding is the one the input guards and the semantic cache already compute for the
question (int8 all-MiniLM-L6-v2 of ``guards.injection.embedding_text(prompt)``), so routing
adds one dot product over 384 + ``len(FEATURE_NAMES)`` values and the features' regular
expressions: microseconds.

A request goes to the cheapest tier when ``p_cheap_correct >= threshold``. The shipped
``threshold`` is the lowest that kept 95% of the strong model's accuracy on the trainer's
held-out prompts; ``threshold_for_strong_share`` gives the threshold that sends a chosen share
of requests above the cheapest tier, from score quantiles of the training prompts stored in
the file.

The shipped weights (``data/router_v1.json``) were trained by ``groundgate route train`` on
RouteLLM's evaluation data (MMLU and GSM8K questions with the correctness of Mixtral-8x7B and
GPT-4; Apache-2.0, the questions MIT), which permits shipping them; ``train.py`` says how.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from groundgate.routing.features import FEATURE_NAMES, request_features
from groundgate.routing.logistic import sigmoid

FORMAT = "groundgate.router/1"
SHIPPED_ROUTER = Path(__file__).parent / "data" / "router_v1.json"


@dataclass(frozen=True)
class LearnedRouter:
    """Weights over [embedding, request features] (standardisation folded in), the bias, the
    shipped threshold and the score quantiles of the training prompts."""

    embedder: str  # the upstream model id whose vectors the weights read
    dimension: int
    weights: npt.NDArray[np.float64]  # dimension + len(FEATURE_NAMES) values
    bias: float
    threshold: float
    # quantiles[i]: the score below which i% of the training prompts fall (101 values).
    quantiles: tuple[float, ...]
    feature_names: tuple[str, ...] = FEATURE_NAMES
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.feature_names != FEATURE_NAMES:
            # A file trained on other features would read the wrong columns.
            raise ValueError(f"router features {self.feature_names} differ from {FEATURE_NAMES}")
        if self.weights.shape != (self.dimension + len(FEATURE_NAMES),):
            raise ValueError(
                f"{self.weights.size} weights for {self.dimension} + {len(FEATURE_NAMES)} values"
            )
        if len(self.quantiles) != 101:
            raise ValueError(f"{len(self.quantiles)} score quantiles, not 101")

    def p_cheap_correct(self, text: str, vector: npt.ArrayLike) -> float:
        """Probability that the cheapest tier answers ``text`` correctly. ``vector``: the unit
        embedding of ``embedding_text(text)`` by ``self.embedder``."""
        values = np.asarray(vector, dtype=np.float64).reshape(-1)
        if values.shape != (self.dimension,):
            raise ValueError(
                f"embedding has {values.size} values; {self.embedder} gives {self.dimension}"
            )
        logit = self.bias + float(values @ self.weights[: self.dimension])
        logit += float(request_features(text) @ self.weights[self.dimension :])
        return sigmoid(logit)

    def threshold_for_strong_share(self, share: float) -> float:
        """The threshold (cheap when ``p_cheap_correct >= t``) that sent ``share`` of the
        training prompts above the cheapest tier; 0 for share <= 0, 1 for share >= 1."""
        if share <= 0:
            return 0.0
        if share >= 1:
            return 1.0
        return float(np.interp(share * 100, np.arange(101), self.quantiles))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "embedder": self.embedder,
            "embedding_text": "groundgate.guards.injection.embedding_text",
            "dimension": self.dimension,
            "feature_names": list(self.feature_names),
            "bias": self.bias,
            "threshold": self.threshold,
            "quantiles": list(self.quantiles),
            "weights": [float(w) for w in self.weights],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedRouter:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a router file (format {data.get('format')!r})")
        return cls(
            embedder=str(data["embedder"]),
            dimension=int(data["dimension"]),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            quantiles=tuple(float(q) for q in data["quantiles"]),
            feature_names=tuple(data["feature_names"]),
            meta=dict(data.get("meta", {})),
        )


def load_router(path: Path | str) -> LearnedRouter:
    """The router in ``path`` (a file from ``groundgate route train``); ValueError if it is not
    one this version can read."""
    return LearnedRouter.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@functools.cache
def shipped_router() -> LearnedRouter:
    """The router of ``SHIPPED_ROUTER``, read once per process."""
    return load_router(SHIPPED_ROUTER)
