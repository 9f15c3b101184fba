"""Documents into chunks that follow their structure.

Markdown splits into sections at headings (the heading path travels with each chunk; the
heading lines are not chunk text), and a chunk never spans two sections. Within a section,
paragraphs (and fenced code blocks, kept whole) are packed up to ``target_tokens``. Anything
over ``max_tokens`` is split: prose by sentences, then words; code by lines, then words. No
chunk exceeds ``max_tokens`` (the embedder would silently drop the rest).

Each chunk after the first in a section starts with the last whole sentences of the previous
one (about ``overlap_tokens`` worth), so a fact that straddles a boundary is still retrievable
in one piece. A chunk's text is always ``doc.text[start_char:end_char]``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from groundgate.retrieval.documents import ChunkDraft, ChunkingConfig, SourceDocument
from groundgate.retrieval.loaders_text import atx_heading, closes_fence, opens_fence

TokenCounter = Callable[[str], int]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_PIECES = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A fast token count that errs high for WordPiece/BPE tokenizers like MiniLM's.

    Each punctuation mark and each CJK character is one token; a word of up to 7 characters
    is one, and each further 3 characters (or part) one more, since long words, identifiers
    and numbers split into several pieces; the sum is then padded by 20%. Measured against the
    MiniLM tokenizer on ~2,000 prose and ~2,000 code paragraphs, it is at or over the true
    count for >99% of prose (by ~40% on average) and ~86% of code; a flat 1.3 x word count is
    under for ~2% of prose and over half of code. Pass the real tokenizer's counter where
    exactness matters.
    """
    pieces = 0
    for match in _PIECES.finditer(text):
        pieces += 1 + max(0, (match.end() - match.start() - 5) // 3)
    return math.ceil(pieces * 1.2)


_UnitKind = Literal["block", "code", "sentence", "piece"]


@dataclass(frozen=True, slots=True)
class _Unit:
    """A span of the document that is packed whole. Only "block" and "sentence" units end
    on sentence boundaries, so only they can donate overlap."""

    start: int
    end: int
    kind: _UnitKind


@dataclass(frozen=True, slots=True)
class _Section:
    path: tuple[str, ...]
    start: int
    end: int


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each line in ``text[start:end]``, newlines excluded."""
    spans: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        newline = text.find("\n", pos, end)
        stop = end if newline == -1 else newline
        spans.append((pos, stop))
        pos = stop + 1
    return spans


def _sections(text: str, markdown: bool) -> list[_Section]:
    """The document cut at ATX headings outside code fences (plain text is one section)."""
    if not markdown:
        return [_Section((), 0, len(text))]
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    fence: str | None = None
    for start, end in _lines(text, 0, len(text)):
        line = text[start:end]
        if fence is not None:
            if closes_fence(line, fence):
                fence = None
            continue
        if (fence := opens_fence(line)) is not None:
            continue
        heading = atx_heading(line)
        if heading is None:
            continue
        sections.append(_Section(tuple(t for _, t in stack), body_start, start))
        level, title = heading[0], (heading[1] or "").strip()
        while stack and stack[-1][0] >= level:
            stack.pop()
        if title:
            stack.append((level, title))
        body_start = end
    sections.append(_Section(tuple(t for _, t in stack), body_start, len(text)))
    return sections


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _blocks(text: str, section: _Section, markdown: bool) -> list[_Unit]:
    """Paragraphs (blank-line separated) and fenced code blocks (whole) of a section."""
    blocks: list[_Unit] = []

    def add(start: int, end: int, kind: _UnitKind) -> None:
        span = _trimmed(text, start, end)
        if span:
            blocks.append(_Unit(span[0], span[1], kind))

    paragraph: tuple[int, int] | None = None
    fence: str | None = None
    code_start = 0
    for start, end in _lines(text, section.start, section.end):
        line = text[start:end]
        if fence is not None:
            if closes_fence(line, fence):
                add(code_start, end, "code")
                fence = None
            continue
        if markdown and (fence := opens_fence(line)) is not None:
            if paragraph:
                add(*paragraph, "block")
            paragraph, code_start = None, start
            continue
        if not line.strip():
            if paragraph:
                add(*paragraph, "block")
            paragraph = None
            continue
        paragraph = (paragraph[0] if paragraph else start, end)
    if fence is not None:  # an unclosed fence runs to the end of the section
        add(code_start, section.end, "code")
    elif paragraph:
        add(*paragraph, "block")
    return blocks


# Periods after these do not end a sentence ("e.g. Paris", "Dr. Watson", "Fig. 3").
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "cf", "vs", "etc", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "no"}
    | {"fig", "approx", "inc", "ltd", "corp", "co", "dept", "vol", "p", "pp", "al", "ca"}
    | {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
)
# A run of end marks is only tried from its first mark, and taken whole: tried from every
# mark, a long run not followed by a space costs quadratic time.
_SENTENCE_END = re.compile(
    r"(?<![.!?\u2026])[.!?\u2026]++[\"'\u201d\u2019)\]]*+(?=\s|$)"
    r"|[\u3002\uff01\uff1f]+[\u300d\u300f\uff09]*"  # CJK full stops need no space after
)
_UNAMBIGUOUS_END = frozenset("!?\u3002\uff01\uff1f")
# A line that starts a list item or a table row starts a new sentence.
_ITEM_LINE = re.compile(r"\n(?=[ \t]*(?:(?:[-*+\u2022]|\d{1,3}[.)])[ \t]|\|))")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")
_NON_SPACE = re.compile(r"\S")
_WORD_RUN = re.compile(r"\S+")
# Only a word this short can be an abbreviation, an initial or a list number; looking no
# further back keeps each end mark's test constant-time (a text of end marks with no spaces
# would otherwise cost quadratic time).
_WORD_LOOKBACK = 64


def _is_sentence_end(text: str, match: re.Match[str], start: int, end: int) -> bool:
    if not _UNAMBIGUOUS_END.isdisjoint(match.group()):
        return True
    word_start = _word_start(text, start, match.start())
    if word_start is not None:
        token = text[word_start : match.start()].lstrip("([\"'\u201c").lower()
        if token in _ABBREVIATIONS or _DOTTED.fullmatch(token):
            return False
        if len(token) == 1 and token.isalpha():
            return False  # an initial, as in "J. R. R. Tolkien"
        if token.isdigit() and _opens_line(text, start, word_start):
            return False  # "1. Install" opens a numbered item
    following = _NON_SPACE.search(text, match.end(), end)
    # "approx. five" and "... and so" continue
    return following is None or not following.group().islower()


def _word_start(text: str, start: int, stop: int) -> int | None:
    """Where the word (cut at spaces and newlines) that ends at ``stop`` begins, no earlier
    than ``start``; None when it is longer than ``_WORD_LOOKBACK``."""
    low = max(start, stop - _WORD_LOOKBACK)
    cut = max(text.rfind(" ", low, stop), text.rfind("\n", low, stop))
    if cut >= 0:
        return cut + 1
    return start if low == start else None


def _opens_line(text: str, start: int, word_start: int) -> bool:
    """Is there only whitespace between the line's start (or ``start``) and ``word_start``?"""
    i = word_start - 1
    while i >= start and text[i] != "\n" and text[i].isspace():
        i -= 1
    return i < start or text[i] == "\n"


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence in ``text[start:end]``, whitespace trimmed.

    Wrapped lines stay joined; list items and table rows are sentences of their own.
    """
    cuts = {m.end() for m in _SENTENCE_END.finditer(text, start, end)
            if _is_sentence_end(text, m, start, end)}  # fmt: skip
    cuts.update(m.start() for m in _ITEM_LINE.finditer(text, start, end))
    bounds = [start, *sorted(c for c in cuts if start < c < end), end]
    spans = (_trimmed(text, a, b) for a, b in itertools.pairwise(bounds))
    return [span for span in spans if span]


class _Chunker:
    def __init__(self, text: str, config: ChunkingConfig, count: TokenCounter) -> None:
        self.text = text
        self.config = config
        self.count = count

    def tokens(self, start: int, end: int) -> int:
        return self.count(self.text[start:end])

    def _last_fitting(
        self, start: int, ends: Sequence[int], low: int, high: int, limit: int
    ) -> int:
        """The largest ``i`` in ``[low, high]`` with ``text[start:ends[i]]`` within ``limit``
        (``low`` is taken as given), assuming a longer span never has fewer tokens.

        Galloping then bisecting costs O(log n) counts, each over at most twice the answer's
        span, where growing one step at a time would cost one count per step.
        """
        step = 1
        while low + step <= high and self.tokens(start, ends[low + step]) <= limit:
            low += step
            step *= 2
        high = min(high, low + step - 1)
        while low < high:
            middle = (low + high + 1) // 2
            if self.tokens(start, ends[middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        return low

    def _group(self, spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
        """Consecutive spans merged greedily while the merged span fits ``limit``."""
        groups: list[tuple[int, int]] = []
        ends = [end for _, end in spans]
        first = 0
        while first < len(spans):
            start = spans[first][0]
            last = self._last_fitting(start, ends, first, len(spans) - 1, limit)
            groups.append((start, spans[last][1]))
            first = last + 1
        return groups

    def _split_chars(self, start: int, end: int) -> list[tuple[int, int]]:
        """Last resort for one "word" over the cap (a hash, a URL): the longest prefixes that
        fit, at least one character each so this always ends."""
        limit = self.config.max_tokens
        pieces: list[tuple[int, int]] = []
        while start < end:
            stop = self._last_fitting(start, range(end + 1), start + 1, end, limit)
            pieces.append((start, stop))
            start = stop
        return pieces

    def _split_words(self, start: int, end: int) -> list[tuple[int, int]]:
        words: list[tuple[int, int]] = []
        for match in _WORD_RUN.finditer(self.text, start, end):
            word = match.span()
            if self.tokens(*word) <= self.config.max_tokens:
                words.append(word)
            else:
                words.extend(self._split_chars(*word))
        return self._group(words, self.config.target_tokens)

    def units(self, block: _Unit) -> list[_Unit]:
        """A block as-is if it fits ``max_tokens``, else its sentences (or lines, for code),
        each split by words if still too big."""
        limit = self.config.max_tokens
        if self.tokens(block.start, block.end) <= limit:
            return [block]
        if block.kind == "code":
            lines = [s for a, b in _lines(self.text, block.start, block.end)
                     if (s := _trimmed(self.text, a, b))]  # fmt: skip
            fitting: list[tuple[int, int]] = []
            for line in lines:
                small = self.tokens(*line) <= limit
                fitting.extend([line] if small else self._split_words(*line))
            grouped = self._group(fitting, self.config.target_tokens)
            return [_Unit(a, b, "piece") for a, b in grouped]
        units: list[_Unit] = []
        for start, end in sentence_spans(self.text, block.start, block.end):
            if self.tokens(start, end) <= limit:
                units.append(_Unit(start, end, "sentence"))
            else:
                units.extend(_Unit(a, b, "piece") for a, b in self._split_words(start, end))
        return units

    def _overlap_start(self, previous: list[_Unit], chunk_start: int, nxt: _Unit) -> int:
        """Where the chunk that begins with ``nxt`` starts: earlier than ``nxt`` when the
        previous chunk ends in whole sentences that fit the overlap and the cap."""
        budget = self.config.overlap_tokens
        if budget <= 0:
            return nxt.start
        end = previous[-1].end
        starts: list[int] = []  # candidate overlap starts, latest first
        for unit in reversed(previous):
            if unit.kind == "sentence":
                spans = [(unit.start, unit.end)]
            elif unit.kind == "block":
                spans = sentence_spans(self.text, unit.start, unit.end)
            else:
                break  # code and word pieces have no sentence boundary to cut at
            for start, _ in reversed(spans):
                size = self.tokens(start, end)
                # Take whole sentences up to the budget; one long last sentence may stretch it
                # to twice the budget rather than leave no overlap at all.
                if size <= budget or (not starts and size <= 2 * budget):
                    starts.append(start)
                if size >= budget:
                    break
            else:
                continue
            break
        # Never repeat the whole previous chunk, and never push the new chunk over the cap.
        for start in reversed(starts):
            if start > chunk_start and self.tokens(start, nxt.end) <= self.config.max_tokens:
                return start
        return nxt.start

    def pack(self, units: list[_Unit]) -> list[tuple[int, int]]:
        """Units packed up to ``target_tokens``, as chunk spans; overlap between chunks."""
        chunks: list[tuple[int, int]] = []
        current: list[_Unit] = []
        start = 0
        for unit in units:
            if current and self.tokens(start, unit.end) <= self.config.target_tokens:
                current.append(unit)
                continue
            if current:
                chunks.append((start, current[-1].end))
                start = self._overlap_start(current, start, unit)
            else:
                start = unit.start
            current = [unit]
        if current:
            chunks.append((start, current[-1].end))
        return chunks


def chunk_document(
    doc: SourceDocument, config: ChunkingConfig, count_tokens: TokenCounter | None = None
) -> list[ChunkDraft]:
    """The chunks of ``doc``, in order; deterministic for the same text and config.

    ``count_tokens`` defaults to ``estimate_tokens``; pass the embedder's own counter to pack
    exactly to its limit.
    """
    chunker = _Chunker(doc.text, config, count_tokens or estimate_tokens)
    markdown = doc.format == "markdown"
    drafts: list[ChunkDraft] = []
    for section in _sections(doc.text, markdown):
        units = [u for block in _blocks(doc.text, section, markdown) for u in chunker.units(block)]
        for start, end in chunker.pack(units):
            text = doc.text[start:end]
            drafts.append(
                ChunkDraft(
                    position=len(drafts),
                    text=text,
                    heading_path=list(section.path),
                    token_count=chunker.tokens(start, end),
                    start_char=start,
                    end_char=end,
                )
            )
    return drafts
