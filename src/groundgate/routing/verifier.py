"""The cascade's answer verifier: the probability that the cheap tier's answer is correct,
from cheap features of the answer and its prompt (``answer_features.py``: a final answer
present, truncation, hedging or refusal, whether its arithmetic holds and its final number
follows from the reasoning, lengths) and the prompt's own features (``features.py``). It never
runs a model: one dot product over about 25 values after a few regular expressions, tens of
microseconds per call.

The cascade escalates when ``p_correct < threshold``. The shipped ``threshold`` is the lowest
that kept 95% of the strong model's accuracy on the trainer's held-out GSM8K questions.

The shipped weights (``data/verifier_v1.json``) were trained by ``groundgate route train`` on
Mixtral-8x7B's GSM8K answers from RouteLLM's evaluation data (Apache-2.0; GSM8K MIT), which
permits shipping them; ``train.py`` says how.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from groundgate.routing.answer_features import ANSWER_FEATURE_NAMES, answer_features
from groundgate.routing.features import FEATURE_NAMES, request_features
from groundgate.routing.logistic import sigmoid

FORMAT = "groundgate.verifier/1"
SHIPPED_VERIFIER = Path(__file__).parent / "data" / "verifier_v1.json"
VERIFIER_FEATURE_NAMES = ANSWER_FEATURE_NAMES + tuple(f"prompt_{n}" for n in FEATURE_NAMES)


def verifier_features(
    prompt: str, answer: str, finish_reason: str | None = None
) -> npt.NDArray[np.float64]:
    """The values of ``VERIFIER_FEATURE_NAMES``: the answer's features, then the prompt's."""
    return np.concatenate(
        [answer_features(prompt, answer, finish_reason), request_features(prompt)]
    )


@dataclass(frozen=True)
class AnswerVerifier:
    weights: npt.NDArray[np.float64]  # one per VERIFIER_FEATURE_NAMES (standardisation folded)
    bias: float
    threshold: float  # escalate when p_correct < threshold
    feature_names: tuple[str, ...] = VERIFIER_FEATURE_NAMES
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.feature_names != VERIFIER_FEATURE_NAMES:
            raise ValueError(
                f"verifier features {self.feature_names} differ from {VERIFIER_FEATURE_NAMES}"
            )
        if self.weights.shape != (len(VERIFIER_FEATURE_NAMES),):
            raise ValueError(f"{self.weights.size} weights for {len(VERIFIER_FEATURE_NAMES)}")

    def p_correct(self, prompt: str, answer: str, finish_reason: str | None = None) -> float:
        """Probability that ``answer`` (the cheap tier's, to the user's ``prompt``) is correct.
        ``finish_reason`` "length" (a cut-off answer) counts against it."""
        values = verifier_features(prompt, answer, finish_reason)
        return sigmoid(self.bias + float(values @ self.weights))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "bias": self.bias,
            "threshold": self.threshold,
            "weights": [float(w) for w in self.weights],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerVerifier:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a verifier file (format {data.get('format')!r})")
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            feature_names=tuple(data["feature_names"]),
            meta=dict(data.get("meta", {})),
        )


def load_verifier(path: Path | str) -> AnswerVerifier:
    """The verifier in ``path`` (a file from ``groundgate route train``)."""
    return AnswerVerifier.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@functools.cache
def shipped_verifier() -> AnswerVerifier:
    """The verifier of ``SHIPPED_VERIFIER``, read once per process."""
    return load_verifier(SHIPPED_VERIFIER)
