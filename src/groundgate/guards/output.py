"""What the output guards look for in an answer, and how they rewrite it: PII and secret leaks,
deny patterns, phantom ``[n]`` markers, unsupported sentences, abstentions, withheld answers.

Plain functions and one small stateful helper (:class:`Placeholders`) over text; the
``guard_out`` stage decides what to apply, and ``stream_text.py`` applies it to chunks.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from groundgate.guards.detect import find_sensitive
from groundgate.guards.grounding import phantom_citations
from groundgate.guards.redaction import merge_spans
from groundgate.guards.spans import Span

POLICY = "POLICY"  # the placeholder type of a deny-pattern match: "[POLICY_1]"
CITATION = "CITATION"  # a phantom [n] marker (removed, not replaced)

# What a grounded app says when its documents do not answer; the cite stage reads answers
# that say it as abstentions (``ABSTAINS``).
ABSTENTION = "I could not find the answer in the provided documents."
# How models say "not in the documents" when they follow the grounded prompt.
ABSTAINS = re.compile(
    r"could not find|couldn't find|cannot find|can't find|not (?:contained|mentioned|found) in"
    r"|no information|do(?:es)? not (?:contain|provide|mention)|unable to (?:find|answer)",
    re.IGNORECASE,
)


def withheld_notice(guard: str) -> str:
    """The content of an answer an output guard withheld (``finish_reason`` says
    ``content_filter``); it names the guard, never what it found."""
    return f"The answer was withheld by an output guard ({guard})."


def _reserved_extents(text: str, reserved: Collection[str]) -> list[Span]:
    """Where ``text`` quotes one of ``reserved`` (the placeholders of the client's own redacted
    input, which are put back into the answer for the client: not leaks)."""
    found: list[Span] = []
    for placeholder in reserved:
        start = text.find(placeholder)
        while start >= 0:
            found.append(Span(start, start + len(placeholder), "RESERVED"))
            start = text.find(placeholder, start + 1)
    return found


def _outside(spans: Iterable[Span], reserved: list[Span]) -> list[Span]:
    return [s for s in spans if not any(s.overlaps(r) for r in reserved)]


def find_leaks(text: str, types: Collection[str], reserved: Collection[str] = ()) -> list[Span]:
    """PII and secrets of ``types`` in ``text`` (``SECRET`` for any secret), except inside the
    placeholders ``reserved`` names."""
    spans = [s for s in find_sensitive(text) if s.type in types]
    return _outside(spans, _reserved_extents(text, reserved)) if reserved and spans else spans


def find_denied(
    text: str, patterns: Sequence[re.Pattern[str]], reserved: Collection[str] = ()
) -> list[Span]:
    """Matches of the deny ``patterns`` (compiled case-insensitive: ``compile_deny``), except
    inside the placeholders ``reserved`` names; empty matches are ignored."""
    spans = [
        Span(m.start(), m.end(), POLICY)
        for pattern in patterns
        for m in pattern.finditer(text)
        if m.end() > m.start()
    ]
    return _outside(spans, _reserved_extents(text, reserved)) if reserved and spans else spans


def compile_deny(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def citation_spans(text: str, passages: Sequence[str]) -> list[Span]:
    """Each ``[n]`` marker that cites none of ``passages`` (numbered from 1, as the prompt
    numbers its sources), with the space before it ("Paris [9]." loses " [9]")."""
    spans = []
    for start, end, _ in phantom_citations(text, passages):
        if start > 0 and text[start - 1] == " ":
            start -= 1
        spans.append(Span(start, end, CITATION))
    return spans


@dataclass(slots=True)
class Placeholders:
    """Irreversible typed placeholders for one answer, consistent across calls (a stream is
    rewritten piece by piece): the same value gets the same ``[TYPE_n]`` throughout, and a
    placeholder the client's own redacted input uses (``reserved``) is never reused, or the
    restore of the input's placeholders would put the client's value where a leak was."""

    reserved: Collection[str] = ()
    _by_value: dict[str, str] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)

    def rewrite(self, text: str, spans: Iterable[Span]) -> str:
        """``text`` with each span replaced: a phantom citation by nothing, anything else by
        its placeholder."""
        pieces: list[str] = []
        cursor = 0
        for span in merge_spans(spans):
            pieces.append(text[cursor : span.start])
            if span.type != CITATION:
                pieces.append(self._placeholder(text[span.start : span.end], span.type))
            cursor = span.end
        pieces.append(text[cursor:])
        return "".join(pieces)

    def _placeholder(self, value: str, kind: str) -> str:
        known = self._by_value.get(value)
        if known is not None:
            return known
        while True:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            placeholder = f"[{kind}_{self._counters[kind]}]"
            if placeholder not in self.reserved:
                break
        self._by_value[value] = placeholder
        return placeholder


def without_sentences(text: str, sentences: Iterable[str]) -> str:
    """``text`` without ``sentences`` (as ``split_sentences`` gave them: whitespace
    normalised), each found in order after the previous one and cut with the space after it.
    A sentence that cannot be found is left (the text is never cut anywhere else)."""
    pieces: list[str] = []
    cursor = 0
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        pattern = re.compile(r"\s+".join(re.escape(w) for w in words) + r"[ \t]*")
        match = pattern.search(text, cursor)
        if match is None:
            continue
        pieces.append(text[cursor : match.start()])
        cursor = match.end()
    pieces.append(text[cursor:])
    return _tidy("".join(pieces))


_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")


def _tidy(text: str) -> str:
    # Removing whole lines leaves runs of blank lines; one blank line is enough.
    return _BLANK_LINES.sub("\n\n", text).strip()
