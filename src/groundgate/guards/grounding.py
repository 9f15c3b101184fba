"""Groundedness: how well each sentence of an answer is supported by the passages it had.

Each answer sentence gets a support score in [0, 1] from two views of the same question,
"could this sentence have been written from these passages?":

- *lexical*: the share of the sentence's content words (lower-cased, stop words dropped,
  compared on their first ``STEM`` characters so "founded"/"founder" meet) that occur in the
  passages or the question; the share of its word pairs (all words, in order) that occur
  there too, which tells a quoted claim from the same words recombined into another one; and,
  separately, its numbers and capitalised names that occur in neither. An invented number or
  name is the commonest hallucination and the cheapest to see, so each one costs
  ``NOVEL_PENALTY`` (up to ``NOVEL_CAP`` of them).
- *semantic*: the cosine between the sentence's MiniLM embedding and that of the passage
  sentence closest to it (the local embedder the semantic cache uses, int8 by default).

``support = W_WORDS * words + W_PAIRS * pairs + W_COSINE * max(cosine, 0)
- NOVEL_PENALTY * min(novel, NOVEL_CAP)``, clipped to [0, 1]. The answer's score is the mean
of its weakest sentence's support and of all sentences' mean (the weakest sentence dominates:
one invented claim should sink an answer, but one awkward sentence in a long faithful answer
should not alone); a sentence below ``THRESHOLD`` is unsupported.

The constants were chosen on even-numbered HaluEval-QA items of
``../shared/data/grounding/dev.jsonl`` (MIT), by AUC, then the threshold by balanced accuracy,
and checked on the odd ones and on FaithBench (CC BY-NC-SA, evaluation only: nothing here
derives from its text). On HaluEval the cosine adds nothing (its right answers are quoted
spans, which word pairs find exactly: AUC 0.980 without the cosine, 0.969 with 0.1 of it); it
keeps a small weight because real answers paraphrase, which word overlap alone punishes.
FaithBench (LLM summaries with subtle errors) stays near chance, as the published detectors
do. ``bench/guards.py --grounding`` reports the figures.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from groundgate.providers.local.models import INT8_EMBEDDER, process_models
from groundgate.providers.local.sentences import split_sentences, split_sources

# Chosen on even HaluEval-QA ids of the development file (see the module docstring).
W_WORDS = 0.4
W_PAIRS = 0.5
W_COSINE = 0.1
NOVEL_PENALTY = 0.3
NOVEL_CAP = 3
THRESHOLD = 0.9
STEM = 5  # characters of a word compared: a cheap stemmer that needs no language data
EMBEDDER = INT8_EMBEDDER

_CITATION = re.compile(r"\[(\d{1,4})\]")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")
# A number as written ("1,234.5", "$ 160", "3%"): digits with inner separators.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_SEPARATOR = re.compile(r"[,.](?=\d{3}(?:\D|$))")
_CAPITALISED = re.compile(r"\b[A-Z][^\W\d_]+(?:['\u2019][a-z]+)?")

_STOP_WORD_LIST = """a about above after again against all also am an and any are as at be
    because been before being below between both but by can could did do does doing down
    during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t don yes one also may might must shall us via per"""
_STOP_WORDS = frozenset(_STOP_WORD_LIST.split())


@dataclass(frozen=True, slots=True)
class SentenceSupport:
    text: str  # the answer sentence as split (citation markers kept)
    support: float  # in [0, 1]
    coverage: float  # share of content words found in the passages or the question
    pairs: float  # share of word pairs found there (``coverage`` for a one-word sentence)
    cosine: float  # best cosine against a passage sentence
    novel: tuple[str, ...]  # numbers and names found in neither
    supported: bool  # support >= THRESHOLD


@dataclass(frozen=True, slots=True)
class Groundedness:
    score: float  # see the module docstring (1.0 for an answer with no sentence)
    sentences: tuple[SentenceSupport, ...]  # in answer order
    threshold: float

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.sentences if not s.supported]

    @property
    def grounded(self) -> bool:
        return self.score >= self.threshold


def passage_texts(passages: str | Sequence[str]) -> list[tuple[int, str]]:
    """``(n, text)`` per passage: a list is numbered from 1; a string is split into its
    ``[n]``-marked sources, else its paragraphs (as the extractive answerer numbers them)."""
    if isinstance(passages, str):
        return split_sources(passages)
    return [(n, text) for n, text in enumerate(passages, start=1)]


def phantom_citations(answer: str, passages: str | Sequence[str]) -> list[tuple[int, int, int]]:
    """``(start, end, n)`` of each ``[n]`` in ``answer`` that cites no passage."""
    known = {n for n, _ in passage_texts(passages)}
    return [
        (m.start(), m.end(), int(m.group(1)))
        for m in _CITATION.finditer(answer)
        if int(m.group(1)) not in known
    ]


def remove_phantom_citations(answer: str, passages: str | Sequence[str]) -> str:
    """``answer`` without its phantom ``[n]`` markers (real ones kept)."""
    out, last = [], 0
    for start, end, _ in phantom_citations(answer, passages):
        # "Paris [9]." -> "Paris.": the space before a marker goes with it.
        out.append(answer[last:start].removesuffix(" "))
        last = end
    out.append(answer[last:])
    return "".join(out)


def _pairs(text: str) -> set[tuple[str, str]]:
    words = _WORD.findall(text.lower())
    return set(itertools.pairwise(words))


def _stems(text: str) -> set[str]:
    return {w[:STEM] for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS}


def _numbers(text: str) -> set[str]:
    return {_NUMBER_SEPARATOR.sub("", n) for n in _NUMBER.findall(text)}


def lexical(sentence: str, known_text: str, known_stems: set[str]) -> tuple[float, list[str]]:
    """(coverage of the sentence's content words, its numbers and names not in the known
    text)."""
    body = _CITATION.sub(" ", sentence)
    stems = _stems(body)
    coverage = len(stems & known_stems) / len(stems) if stems else 1.0
    novel = sorted(_numbers(body) - _numbers(known_text))
    for name in _CAPITALISED.findall(body):
        word = name.lower()
        if word not in _STOP_WORDS and word[:STEM] not in known_stems:
            novel.append(name)
    return coverage, novel


def pair_coverage(sentence: str, known_pairs: set[tuple[str, str]], coverage: float) -> float:
    pairs = _pairs(_CITATION.sub(" ", sentence))
    return len(pairs & known_pairs) / len(pairs) if pairs else coverage


def support_score(coverage: float, pairs: float, cosine: float, novel: int) -> float:
    raw = W_WORDS * coverage + W_PAIRS * pairs + W_COSINE * max(cosine, 0.0)
    return float(min(1.0, max(0.0, raw - NOVEL_PENALTY * min(novel, NOVEL_CAP))))


def answer_score(sentences: Sequence[SentenceSupport]) -> float:
    if not sentences:
        return 1.0
    supports = [s.support for s in sentences]
    return 0.5 * min(supports) + 0.5 * sum(supports) / len(supports)


class SentenceEmbedder(Protocol):
    """What the scorer needs of an embedder (``MiniLMEmbedder``, or one that remembers)."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class GroundednessScorer:
    """Scores answers against passages with one embedder (loaded once per process)."""

    def __init__(self, embedder: SentenceEmbedder | None = None) -> None:
        self.embedder: SentenceEmbedder = embedder or process_models().embedder(EMBEDDER)

    def score(self, passages: str | Sequence[str], answer: str, question: str = "") -> Groundedness:
        """Support of each sentence of ``answer`` against ``passages`` (all of them: the
        passages it cites and the rest retrieved). Words of ``question`` count as known:
        restating the question invents nothing."""
        texts = [text for _, text in passage_texts(passages)]
        context = "\n\n".join(texts)
        sentences = split_sentences(answer)
        if not sentences:
            return Groundedness(answer_score(()), (), THRESHOLD)
        evidence = [s for text in texts for s in split_sentences(text)]
        cosines = self._best_cosines([_CITATION.sub(" ", s) for s in sentences], evidence)
        known_text = f"{context}\n{question}"
        known_stems = _stems(known_text)
        known_pairs = _pairs(known_text)
        scored = []
        for sentence, cosine in zip(sentences, cosines, strict=True):
            coverage, novel = lexical(sentence, known_text, known_stems)
            pairs = pair_coverage(sentence, known_pairs, coverage)
            support = support_score(coverage, pairs, cosine, len(novel))
            scored.append(
                SentenceSupport(
                    sentence, support, coverage, pairs, cosine, tuple(novel), support >= THRESHOLD
                )
            )
        return Groundedness(answer_score(scored), tuple(scored), THRESHOLD)

    def _best_cosines(self, sentences: list[str], evidence: list[str]) -> list[float]:
        if not evidence:
            return [0.0] * len(sentences)
        vectors: npt.NDArray[np.float32] = self.embedder.embed([*sentences, *evidence])
        similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
        return [float(x) for x in similarity.max(axis=1)]
