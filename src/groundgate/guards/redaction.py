"""Replace detected spans with typed placeholders, reversibly.

``redact`` turns "mail ada@example.org" into "mail [EMAIL_1]" and returns the mapping
``{"[EMAIL_1]": "ada@example.org"}``; ``restore`` puts the originals back into a text (the
model's answer) that quotes the placeholders. The same value gets the same placeholder
throughout a text, so an answer that repeats it restores consistently. Irreversible
redaction is the same call with the mapping dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from groundgate.guards.spans import Span

_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]{0,31}_[0-9]{1,6}\]")


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    # placeholder -> original text
    mapping: dict[str, str] = field(default_factory=dict)


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Overlapping (or touching-inside) spans become one, typed as the longest of them."""
    merged: list[tuple[Span, Span]] = []  # (merged extent, longest member)
    for span in sorted(spans):
        if merged and span.start < merged[-1][0].end:
            extent, longest = merged[-1]
            if span.end - span.start > longest.end - longest.start:
                longest = span
            merged[-1] = (Span(extent.start, max(extent.end, span.end), longest.type), longest)
        else:
            merged.append((span, span))
    return [Span(extent.start, extent.end, longest.type) for extent, longest in merged]


def redact(text: str, spans: Iterable[Span]) -> Redacted:
    """``text`` with each (merged) span replaced by ``[TYPE_n]``, and the way back."""
    redactor = Redactor()
    return Redacted(redactor.redact(text, spans), redactor.mapping)


class Redactor:
    """Redaction across several texts (a conversation's messages): a value gets the same
    placeholder in every text, and no two values share one."""

    def __init__(self) -> None:
        self._placeholders: dict[str, str] = {}  # original -> placeholder
        self._counters: dict[str, int] = {}

    @property
    def mapping(self) -> dict[str, str]:
        """placeholder -> original, for every value redacted so far."""
        return {p: o for o, p in self._placeholders.items()}

    def redact(self, text: str, spans: Iterable[Span]) -> str:
        pieces: list[str] = []
        cursor = 0
        for span in merge_spans(spans):
            original = text[span.start : span.end]
            placeholder = self._placeholders.get(original)
            if placeholder is None:
                placeholder = self._next_placeholder(span.type, text)
                self._placeholders[original] = placeholder
            pieces += (text[cursor : span.start], placeholder)
            cursor = span.end
        if not pieces:
            return text
        pieces.append(text[cursor:])
        return "".join(pieces)

    def _next_placeholder(self, kind: str, text: str) -> str:
        # A placeholder the text already holds would restore to the wrong value: skip it.
        counters = self._counters
        while True:
            counters[kind] = counters.get(kind, 0) + 1
            placeholder = f"[{kind}_{counters[kind]}]"
            if placeholder not in text:
                return placeholder


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the originals back wherever ``text`` quotes one of ``mapping``'s placeholders."""
    if not mapping:
        return text
    return _PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)
