"""Metric functions. Pure: no I/O, no state, the same inputs give the same number.

Answer quality (SQuAD style)
    :func:`normalize_answer`, :func:`exact_match`, :func:`token_f1`, and :func:`best_of` for the
    maximum over several acceptable answers.
Rules
    :func:`rules_pass`: required and forbidden substrings, case-insensitive.
Abstention
    :func:`abstention_correct`: did the system abstain exactly when it should have?
Retrieval (binary relevance, ranked ids best first)
    :func:`recall_at_k`, :func:`mrr_at_k`, :func:`ndcg_at_k`.
Aggregates
    :func:`mean`, :func:`percentile`.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


# -- answer quality --------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop ASCII punctuation, drop the articles a/an/the,
    collapse whitespace.

    Punctuation is removed (not replaced by a space), as in the SQuAD evaluation script, so
    "U.S." becomes "us" and scores are comparable with published SQuAD figures.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (bag of tokens).

    When either side normalises to no tokens at all, the score is 1.0 if both are empty and
    0.0 otherwise (the SQuAD convention for "no answer").
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_of(metric: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """The best score of ``prediction`` against any of ``golds`` (each one is acceptable).

    Raises ``ValueError`` when there is no gold answer: the case has no score, rather than 0.
    """
    scores = [metric(prediction, gold) for gold in golds]
    if not scores:
        raise ValueError("at least one gold answer is needed")
    return max(scores)


# -- rules and abstention --------------------------------------------------------------------


def rules_pass(answer: str, must_contain: Iterable[str], must_not_contain: Iterable[str]) -> bool:
    """True when every ``must_contain`` string occurs in ``answer`` and no ``must_not_contain``
    string does. Plain substring tests, case-insensitive (Unicode case folding)."""
    folded = answer.casefold()
    if any(needle.casefold() not in folded for needle in must_contain):
        return False
    return not any(needle.casefold() in folded for needle in must_not_contain)


def abstention_correct(abstained: bool, answerable: bool) -> bool:
    """Right to answer an answerable question, right to abstain on an unanswerable one."""
    return abstained == (not answerable)


# -- retrieval -------------------------------------------------------------------------------


def _top_k(retrieved: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids, in order: a repeated id earns no second credit."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in retrieved:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def _relevant_set(relevant: Iterable[str]) -> set[str]:
    rel = set(relevant)
    if not rel:
        raise ValueError("at least one relevant id is needed")
    return rel


def recall_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant ids found among the first ``k`` retrieved."""
    rel = _relevant_set(relevant)
    return sum(1 for doc_id in _top_k(retrieved, k) if doc_id in rel) / len(rel)


def mrr_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Reciprocal rank (1/rank, ranks from 1) of the first relevant id within the first ``k``;
    0.0 when none is there. Its mean over cases is the MRR."""
    rel = _relevant_set(relevant)
    for rank, doc_id in enumerate(_top_k(retrieved, k), start=1):
        if doc_id in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """Normalised discounted cumulative gain with binary relevance.

    DCG@k = sum over ranks i = 1..k of rel_i / log2(i + 1), with rel_i 1 for a relevant id and
    0 otherwise. The ideal DCG puts all relevant ids first: the sum of 1 / log2(i + 1) for
    i = 1..min(number of relevant ids, k). nDCG@k = DCG@k / IDCG@k, in [0, 1].
    """
    rel = _relevant_set(relevant)
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, doc_id in enumerate(_top_k(retrieved, k), start=1)
        if doc_id in rel
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(rel), k) + 1))
    return dcg / ideal


# -- aggregates ------------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or None for no values (a metric no case covers has no value)."""
    return math.fsum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (the
    default of numpy.percentile); None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
