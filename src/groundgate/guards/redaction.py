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
    placeholders: dict[str, str] = {}  # original -> placeholder
    counters: dict[str, int] = {}
    pieces: list[str] = []
    cursor = 0
    for span in merge_spans(spans):
        original = text[span.start : span.end]
        placeholder = placeholders.get(original)
        if placeholder is None:
            placeholder = _next_placeholder(span.type, counters, text)
            placeholders[original] = placeholder
        pieces += (text[cursor : span.start], placeholder)
        cursor = span.end
    pieces.append(text[cursor:])
    return Redacted("".join(pieces), {p: o for o, p in placeholders.items()})


def _next_placeholder(kind: str, counters: dict[str, int], text: str) -> str:
    # A placeholder the text already holds would restore to the wrong value: skip it.
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
