"""How the cascade judges a cheap answer: a score in [0, 1] from ``(prompt, answer,
finish_reason)`` and the threshold below which the next tier is asked.

The shipped scorer checks the answer's form (empty, cut off at ``max_tokens``, a refusal).
A learned verifier plugs in through :func:`verifier_scorer` (the form checks still come
first: no verifier should have to learn that an empty answer is wrong). The cascade stage adds
what only the request knows (JSON asked for but not given, an output guard's verdict).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from groundgate.routing.verifier import shipped_verifier

Score = Callable[[str, str, str | None], float]

# Openings of a refusal or a non-answer ("I'm sorry, but I can't ...", "As an AI ...").
_REFUSAL = re.compile(
    r"^\s*(?:i(?:'m| am) sorry|sorry,|i (?:can(?:no|')t|cannot|am unable|'m unable|"
    r"won't|do not know|don't know)|as an ai\b|i'm not able|i am not able)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class AnswerScorer:
    name: str  # for the trace
    score: Score
    threshold: float  # a score below it escalates (``cascade.threshold`` overrides it)
    blocking: bool = False  # CPU work (a model): run off the event loop


def form_problem(answer: str, finish_reason: str | None) -> str | None:
    """What is wrong with the answer's form, None when nothing is."""
    if finish_reason == "length":
        return "cut off (finish_reason length)"
    if finish_reason == "content_filter":
        return "content filtered"
    if not answer.strip():
        return "empty answer"
    if _REFUSAL.match(answer):
        return "refusal"
    return None


def form_score(prompt: str, answer: str, finish_reason: str | None) -> float:
    return 0.0 if form_problem(answer, finish_reason) is not None else 1.0


FORM_SCORER = AnswerScorer("format", form_score, 0.5)


class Verifier(Protocol):
    """What a learned answer verifier offers (``routing/verifier.py``'s AnswerVerifier)."""

    @property
    def threshold(self) -> float:
        """Below it, the answer is escalated."""

    def p_correct(self, prompt: str, answer: str, finish_reason: str | None) -> float: ...


def verifier_scorer(verifier: Verifier) -> AnswerScorer:
    """A learned verifier's probability that the answer is correct, after the form checks."""

    def score(prompt: str, answer: str, finish_reason: str | None) -> float:
        if form_problem(answer, finish_reason) is not None:
            return 0.0
        return verifier.p_correct(prompt, answer, finish_reason)

    return AnswerScorer("verifier", score, verifier.threshold, blocking=True)


def shipped_scorer() -> AnswerScorer:
    """The scorer a cascade uses: the form checks, then the shipped verifier
    (``routing/verifier.py``, trained on GSM8K answers)."""
    return verifier_scorer(shipped_verifier())
