"""RAG metrics computed locally: context precision and recall, faithfulness.

Context precision (rank-aware)
    The mean, over the ranks k where a relevant context sits, of precision@k: relevant
    contexts ranked first score higher than the same ones ranked last (RAGAS's definition).
    Relevance is by id against ``relevant_ids`` (:func:`context_precision`) or, without ids,
    a context is relevant when it supports a sentence of the reference
    (:func:`reference_relevance`).
Context recall
    Against ``relevant_ids``: the share of them retrieved (:func:`context_recall`). Against
    reference text (``reference_context`` or the acceptable ``answers``): the share of its
    sentences supported by the retrieved contexts (:func:`reference_recall`).
Faithfulness
    The share of the answer's claims (sentences, less those that say the documents do not
    answer) supported by the retrieved contexts (:func:`faithfulness`), and the answer-level
    groundedness score (``guards/grounding.py``: the weakest sentence weighs half), which is
    what the faithfulness AUC of ``bench/evals.py`` is measured on (:func:`faithfulness_score`).

"Supported" is the groundedness scorer's per-sentence verdict (support >= its shipped
threshold), with the local MiniLM embedder loaded once per process. The scoring functions are
CPU work; the scorers of ``builtin_scorers.py`` run them off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from groundgate.guards.groundedness_check import process_scorer
from groundgate.guards.grounding import GroundednessScorer, SentenceSupport, answer_score
from groundgate.guards.output import ABSTAINS
from groundgate.providers.local.sentences import split_sentences

# -- by id -----------------------------------------------------------------------------------


def precision_of_flags(relevant: Sequence[bool]) -> float:
    """Rank-aware precision of contexts marked relevant or not, best-ranked first: the mean
    of precision@k over the ranks k holding a relevant one; 0.0 when none is relevant."""
    hits = 0
    total = 0.0
    for rank, is_relevant in enumerate(relevant, start=1):
        if is_relevant:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def context_precision(retrieved_ids: Sequence[str], relevant_ids: Sequence[str]) -> float:
    """Rank-aware precision of ``retrieved_ids`` (a repeated id earns no second credit)."""
    relevant = set(relevant_ids)
    if not relevant:
        raise ValueError("at least one relevant id is needed")
    distinct = list(dict.fromkeys(retrieved_ids))
    return precision_of_flags([doc_id in relevant for doc_id in distinct])


def context_recall(retrieved_ids: Sequence[str], relevant_ids: Sequence[str]) -> float:
    """The share of ``relevant_ids`` among everything retrieved."""
    relevant = set(relevant_ids)
    if not relevant:
        raise ValueError("at least one relevant id is needed")
    return len(relevant & set(retrieved_ids)) / len(relevant)


# -- by reference text -----------------------------------------------------------------------


def reference_sentences(references: Sequence[str]) -> list[str]:
    return [s for text in references for s in split_sentences(text)]


def reference_recall(
    contexts: Sequence[str], references: Sequence[str], scorer: GroundednessScorer | None = None
) -> float:
    """The share of the references' sentences supported by ``contexts`` (0.0 with no context).
    The question is not given to the scorer: the contexts alone must hold the reference."""
    sentences = reference_sentences(references)
    if not sentences:
        raise ValueError("a reference with at least one sentence is needed")
    if not contexts:
        return 0.0
    scored = (scorer or process_scorer()).score(list(contexts), " ".join(sentences))
    return sum(s.supported for s in scored.sentences) / len(scored.sentences)


def reference_relevance(
    contexts: Sequence[str], references: Sequence[str], scorer: GroundednessScorer | None = None
) -> list[bool]:
    """Per context, in order: does it alone support at least one sentence of the references?"""
    text = " ".join(reference_sentences(references))
    if not text:
        raise ValueError("a reference with at least one sentence is needed")
    scorer = scorer or process_scorer()
    return [any(s.supported for s in scorer.score([c], text).sentences) for c in contexts]


# -- faithfulness ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Faithfulness:
    share: float | None  # claims supported / claims (None: the answer makes no claim)
    score: float  # the answer-level groundedness score of its claims (1.0 with none)
    claims: tuple[SentenceSupport, ...]

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.claims if not s.supported]


def faithfulness(
    passages: Sequence[str],
    answer: str,
    question: str = "",
    scorer: GroundednessScorer | None = None,
) -> Faithfulness:
    """How far ``answer`` is supported by ``passages``. Sentences that say the documents do
    not answer are not claims (as in the groundedness guard) and are left out."""
    scored = (scorer or process_scorer()).score(list(passages), answer, question)
    claims = tuple(s for s in scored.sentences if not ABSTAINS.search(s.text))
    share = sum(s.supported for s in claims) / len(claims) if claims else None
    return Faithfulness(share, answer_score(claims), claims)


def faithfulness_score(passages: Sequence[str], answer: str, question: str = "") -> float:
    """The answer-level faithfulness in [0, 1] (higher: better supported), with the shipped
    threshold and weights: what ``bench/evals.py`` measures the AUC of. Blocking (CPU)."""
    return faithfulness(passages, answer, question).score
