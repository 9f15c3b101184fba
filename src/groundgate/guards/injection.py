"""Prompt-injection classifier: logistic regression over the question's sentence embedding
and a few phrase rules, in microseconds once the embedding is known.

The embedding is the one the semantic cache computes for the same text: all-MiniLM-L6-v2 in
int8 (``[cache] embedder``'s default) of ``normalize_question(text)`` (``embedding_text``).
So a request pays for one embedding, shared by the cache and this guard; the guard itself
adds the rules (~tens of µs) and one dot product over 384 + 7 values.

The weights and the threshold ship in ``SHIPPED_MODEL`` (``data/injection_v2.json``), trained
on deepset/prompt-injections (Apache-2.0) and S-Labs/prompt-injection-dataset (MIT) train
splits; ``train_injection.py`` has the exact commands that reproduce it, the split, the fit and
how the threshold is chosen. The file names the embedder it was trained with; vectors from
another embedder live in another space and are refused.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from groundgate.cache.normalize import normalize_question
from groundgate.guards.injection_rules import RULE_NAMES, matched_rules

SHIPPED_MODEL = Path(__file__).parent / "data" / "injection_v2.json"
FORMAT = "groundgate.injection/1"


# The embedding costs ~0.1 ms per token on this CPU (all-MiniLM-L6-v2 int8, 2 cores), up to
# its 256-token cap: ~35 ms for a 500-token prompt. The classifier therefore reads a window of
# a long text, its beginning and its end (where instructions to the model usually sit), about
# 120 tokens in all; the rules still read the whole text. A question shorter than the window is
# read whole, in the same form the semantic cache embeds, so the two share one embedding.
WINDOW_CHARS = 480


def embedding_text(text: str) -> str:
    """The text whose embedding the classifier reads: the semantic cache's form of the text,
    or, for a long one, of its first and last ``WINDOW_CHARS / 2`` characters."""
    if len(text) > WINDOW_CHARS:
        half = WINDOW_CHARS // 2
        text = text[:half].rsplit(" ", 1)[0] + " ... " + text[-half:].split(" ", 1)[-1]
    return normalize_question(text)


@dataclass(frozen=True, slots=True)
class InjectionVerdict:
    score: float  # the model's probability that the text is an injection, in [0, 1]
    flagged: bool  # score >= the shipped threshold
    rules: tuple[str, ...]  # the rule families found in the text (for traces)


@dataclass(frozen=True)
class InjectionModel:
    """What the trainer writes: weights over [embedding, rule vector] (already folded with
    the standardisation), bias, threshold, and the embedder the weights expect."""

    embedder: str
    dimension: int
    rule_names: tuple[str, ...]
    weights: npt.NDArray[np.float64]  # dimension + len(rule_names) values
    bias: float
    threshold: float
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "embedder": self.embedder,
            "embedding_text": "normalize_question",
            "dimension": self.dimension,
            "rule_names": list(self.rule_names),
            "bias": self.bias,
            "threshold": self.threshold,
            "weights": [float(w) for w in self.weights],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InjectionModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an injection model file (format {data.get('format')!r})")
        weights = np.asarray(data["weights"], dtype=np.float64)
        rule_names = tuple(data["rule_names"])
        dimension = int(data["dimension"])
        if weights.shape != (dimension + len(rule_names),):
            raise ValueError(f"{weights.size} weights for {dimension} + {len(rule_names)} features")
        return cls(
            embedder=str(data["embedder"]),
            dimension=dimension,
            rule_names=rule_names,
            weights=weights,
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            meta=dict(data.get("meta", {})),
        )


class InjectionClassifier:
    """Scores one text from its precomputed embedding (see the module docstring)."""

    def __init__(self, model: InjectionModel) -> None:
        if model.rule_names != RULE_NAMES:
            # A model trained on other rule families would read the wrong columns.
            raise ValueError(f"model rules {model.rule_names} differ from {RULE_NAMES}")
        self.model = model
        self.embedder = model.embedder
        self.threshold = model.threshold
        self._embedding_weights = model.weights[: model.dimension]
        self._rule_weights = {
            name: float(w)
            for name, w in zip(RULE_NAMES, model.weights[model.dimension :], strict=True)
        }

    def score(self, text: str, embedding: npt.ArrayLike) -> InjectionVerdict:
        """``embedding``: the unit vector of ``embedding_text(text)`` from ``self.embedder``.
        The rules read ``text`` as written."""
        vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if vector.shape != self._embedding_weights.shape:
            raise ValueError(
                f"embedding has {vector.size} values; {self.embedder} gives {self.model.dimension}"
            )
        rules = matched_rules(text)
        logit = self.model.bias + float(vector @ self._embedding_weights)
        logit += sum(self._rule_weights[name] for name in rules)
        probability = _sigmoid(logit)
        return InjectionVerdict(probability, probability >= self.threshold, rules)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def load_model(path: Path) -> InjectionModel:
    return InjectionModel.from_json(json.loads(path.read_text(encoding="utf-8")))


@functools.cache
def shipped_classifier() -> InjectionClassifier:
    """The classifier of ``SHIPPED_MODEL``, read once per process."""
    return InjectionClassifier(load_model(SHIPPED_MODEL))
