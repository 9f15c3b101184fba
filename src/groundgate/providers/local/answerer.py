"""A grounded extractive answerer: it quotes the context sentences that best support an answer
to the question, each with its ``[n]`` citation, and abstains when none is good enough.

It never writes a word that is not in the context, so it cannot hallucinate; the price is
that it answers with whole sentences and cannot combine or paraphrase facts.

Scoring. A sentence's support is

    score = name_factor * (DENSE_WEIGHT * cosine(question, sentence) + LEXICAL_WEIGHT * overlap)

- ``cosine`` (MiniLM, unit vectors) catches paraphrases, but rates on-topic sentences that do
  not answer nearly as high as the answer.
- ``overlap`` is the share of the question's content words (stopwords removed, crudely
  stemmed) found in the sentence; it pins the question's specific terms but misses synonyms.
- ``name_factor`` halves the score of every sentence when the question's capitalised names
  appear nowhere in the context ("population of Berlin?" against a text about Paris).
- Both signals read the sentence with a leading pronoun resolved ("She won ..." is scored as
  "Marie Curie won ..."), see ``sentences.resolve_pronoun``.

Selection: the best ``max_sentences`` sentences scoring at least ``min_support`` and at least
``RELATIVE_FLOOR`` of the best score, quoted in document order; none -> abstain.

Calibration, on the SQuAD 2.0 dev subset of the shared evaluation data (2 articles): with
0.6/0.4 the top sentence holds the answer for 84% of answerable questions. At ``min_support``
0.40, 97% of them are answered, while only 11% of questions about *another paragraph of the
same article* (the hard case for RAG: right document, wrong chunk) and none about another
article get an answer; 0.35 answers 99% / 16%, 0.45 answers 94% / 6%. Hence the default of 0.40.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from groundgate.providers.local.sentences import (
    ABBREVIATIONS,
    Sentence,
    context_sentences,
    question_and_context,
)

DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4
# A selected sentence must also come close to the best one: a weak runner-up dilutes an answer.
RELATIVE_FLOOR = 0.8
# Share of the score lost when none of the question's names occur anywhere in the context.
UNKNOWN_NAME_PENALTY = 0.5
# Sentences shorter than this are headings or fragments, not answers.
MIN_WORDS = 3
# Embedding every sentence of a huge context is slow on a CPU; beyond this many we keep the
# sentences with the most question words (then document order) and embed only those.
MAX_CANDIDATES = 256

NO_ANSWER = "I could not find the answer in the provided context."
NO_CONTEXT = (
    "No context was supplied with the question, so I cannot answer it: "
    "I only answer from the documents or context provided."
)
NO_QUESTION = (
    "Hello! I answer questions from the provided context, with citations. "
    "What would you like to know?"
)

EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]

_WORD = re.compile(r"\w+", re.UNICODE)
_CLOSED = re.compile(r"[.\"'\u201d\u2019)\]]$")  # ends with a period, quote or bracket
_END_MARKS = ".!?…"
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # "p.m", "u.s"
# Function words and question words: none of them says what is being asked about.
_STOPWORD_TEXT = """
a about above after again against all also am an and any are aren as at be because been before
being below between both but by can cannot could couldn did didn do does doesn doing don down
during each either else ever few for from further get gets got had hadn has hasn have haven having
he her here hers herself him himself his how however i if in into is isn it its itself just let
lets like may me might more most much must mustn my myself neither no nor not now of off on once
one only or other ought our ours ourselves out over own per please same shall shan she should
shouldn so some such than that the their theirs them themselves then there these they this those
through thus to too under until up upon us very was wasn we were weren what whatever when whenever
where whereas wherever whether which while who whoever whom whose why will with within without won
would wouldn yes yet you your yours yourself yourselves s t d ll m re ve tell know explain describe
give say said mean means called kind type thing things
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Words that make up greetings and thanks. They still count as overlap ("night shift"), but a
# question made only of them and of stopwords is small talk, not a question.
_SMALL_TALK_TEXT = """
hi hello hey hiya howdy greetings thanks thank thx cheers bye goodbye good morning afternoon
evening night ok okay sure great cool nice welcome there bot assistant lot lots appreciate
appreciated awesome perfect
"""
_SMALL_TALK = frozenset(_SMALL_TALK_TEXT.split())


@dataclass(frozen=True, slots=True)
class Citation:
    index: int  # the source number, as in the answer's [n]
    snippet: str  # the quoted sentence
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "snippet": self.snippet, "score": round(self.score, 4)}


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)


def _stem(word: str) -> str:
    # Just enough to match "inhabitants"/"inhabitant" and "founded"/"founding"; applied to both
    # sides, so an ugly stem still matches itself.
    for suffix, replacement, min_len in (("ies", "y", 5), ("ing", "", 6), ("ed", "", 5),
                                         ("es", "", 5), ("s", "", 4)):  # fmt: skip
        if len(word) >= min_len and word.endswith(suffix) and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + replacement
    return word


_SMALL_TALK_STEMS = frozenset(_stem(w) for w in _SMALL_TALK)


def content_words(text: str) -> set[str]:
    """Stemmed words of ``text`` that carry meaning (no stopwords, no small talk)."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def question_names(question: str) -> set[str]:
    """Stemmed capitalised words after the first one: names the question is asking about."""
    words = _WORD.findall(question)[1:]
    names = {w.lower() for w in words if w[:1].isupper() and w != "I"}
    return {_stem(w) for w in names if w not in _STOPWORDS}


def _cite(sentence: str, source: int) -> str:
    """Put ``[n]`` before the closing punctuation: "... France [1]."."""
    # rstrip, not a "[.!?…]+$" search: that retries from every mark of a long run.
    body = sentence.rstrip(_END_MARKS)
    marks = sentence[len(body) :]
    last_word = sentence.rsplit(None, 1)[-1].lower()
    if marks and not (marks == "." and _is_abbreviation(last_word)):
        return f"{body.rstrip()} [{source}]{marks}"
    # Ends with an abbreviation ("5 p.m."), a closing quote or bracket, or nothing (a bullet):
    # the marker goes after it, so the quote stays intact.
    return f"{sentence} [{source}]" + ("" if _CLOSED.search(sentence) else ".")


def _is_abbreviation(word: str) -> bool:
    # "p.m." or "U.S." (letters with inner dots; not "3.5") or a listed one ("etc.", "Inc.").
    core = word.rstrip(".")
    return core in ABBREVIATIONS or _DOTTED.fullmatch(core) is not None


class ExtractiveAnswerer:
    """Answers the last user message from the context messages, by quotation."""

    def __init__(self, embed: EmbedFn, *, min_support: float = 0.40, max_sentences: int = 3):
        self._embed = embed
        self.min_support = min_support
        self.max_sentences = max_sentences

    def answer_messages(self, messages: Sequence[dict[str, Any]]) -> Answer:
        question, context = question_and_context(messages)
        return self.answer(question, context)

    def answer(self, question: str, context: str) -> Answer:
        asked = content_words(question)
        if not asked - _SMALL_TALK_STEMS:  # a greeting, "thanks", or nothing at all
            return Answer(NO_QUESTION, abstained=True)
        candidates = [s for s in context_sentences(context) if len(s.text.split()) >= MIN_WORDS]
        if not candidates:
            return Answer(NO_CONTEXT if not context.strip() else NO_ANSWER, abstained=True)
        factor = unknown_name_factor(question, content_words(context))
        scored = [(s, factor * score) for s, score in self.score(question, candidates)]
        best = max(score for _, score in scored)
        floor = max(self.min_support, best * RELATIVE_FLOOR if best > 0 else best)
        chosen = sorted(scored, key=lambda item: -item[1])[: self.max_sentences]
        chosen = [item for item in chosen if item[1] >= floor]
        if not chosen:
            return Answer(NO_ANSWER, abstained=True)
        chosen.sort(key=lambda item: item[0].position)  # quote in document order
        text = " ".join(_cite(s.text, s.source) for s, _ in chosen)
        citations = [Citation(s.source, s.text, score) for s, score in chosen]
        return Answer(text, abstained=False, citations=citations)

    def score(self, question: str, candidates: list[Sentence]) -> list[tuple[Sentence, float]]:
        """Candidates with their support scores (see the module docstring); a huge context
        is first cut to the ``MAX_CANDIDATES`` sentences sharing the most question words."""
        asked = content_words(question)
        share = 1 / len(asked) if asked else 0.0
        overlaps = [share * len(asked & content_words(s.resolved)) for s in candidates]
        if len(candidates) > MAX_CANDIDATES:
            keep = sorted(range(len(candidates)), key=lambda i: (-overlaps[i], i))
            keep = sorted(keep[:MAX_CANDIDATES])
            candidates = [candidates[i] for i in keep]
            overlaps = [overlaps[i] for i in keep]
        vectors = self._embed([question, *(s.resolved for s in candidates)])
        cosines = vectors[1:] @ vectors[0]
        return [
            (s, float(DENSE_WEIGHT * cos + LEXICAL_WEIGHT * lex))
            for s, cos, lex in zip(candidates, cosines, overlaps, strict=True)
        ]


def unknown_name_factor(question: str, context_words: set[str]) -> float:
    """Discount for a question that names things the context never mentions.

    "What is the population of Berlin?" against a text about Paris scores well on both
    signals (a population sentence, similar meaning); only the name tells them apart.
    """
    names = question_names(question)
    if not names:
        return 1.0
    missing = len(names - context_words) / len(names)
    return 1.0 - UNKNOWN_NAME_PENALTY * missing
